"""The GenAI options of `%serve create` and `%serve gateway`: AI Gateway flags, external models
(`--external openai:MODEL --api-base URL --secret SCOPE/KEY --task chat`), provisioned throughput
(`--pt-units N` after a `--model`), and the line that says what a new GenAI endpoint is.

The values are built by `core.ai_gateway` and `core.genai` and checked by `core.rules` in the client,
before anything is sent.
"""
from __future__ import annotations

import argparse
from typing import Any

from jupyter_serving.core.errors import InvalidInputError
from jupyter_serving.magics.completion import Typed
from jupyter_serving.magics.parsing import CommandParser

GATEWAY_EPILOG = (
    "Rate limits: --rate-limit '100/min per user' (repeatable; '5000 tokens/min per group:eng', "
    "'100 calls, 5000 tokens/min' for the endpoint), or --calls N --tokens N --per user|endpoint|group:NAME|"
    "sp[:ID]|user:NAME. Guardrails apply to input and output (--guardrails-on to choose).")
TASK_CHOICES = ("chat", "completions", "embeddings")
PER_VALUES = ["user", "endpoint", "group:", "sp", "sp:", "user:"]


def add_gateway_arguments(p: CommandParser, *, changing: bool = False) -> None:
    """The AI Gateway flags; `changing` (for `%serve gateway`) adds the ones that remove settings."""
    g = p.add_argument_group("AI Gateway")
    g.add_argument("--rate-limit", action="append", metavar="SPEC", help="e.g. '100/min per user' (repeatable)")
    g.add_argument("--calls", type=int, metavar="N", help="a rate limit of N calls per minute (with --per)")
    g.add_argument("--tokens", type=int, metavar="N", help="a rate limit of N tokens per minute (with --per)")
    g.add_argument("--per", metavar="WHO", help="user, endpoint (default), group:NAME, sp[:ID] or user:NAME")
    g.add_argument("--usage-tracking", action=argparse.BooleanOptionalAction, default=None,
                   help="record usage (system.serving.endpoint_usage)")
    g.add_argument("--inference-table", metavar="CATALOG.SCHEMA.PREFIX", help="log payloads to <prefix>_payload")
    g.add_argument("--guardrail-keywords", metavar="A,B", help="block queries and answers with these words")
    g.add_argument("--pii", choices=("block", "mask", "none"), help="what to do with personal data")
    g.add_argument("--guardrails-on", choices=("input", "output", "both"), default="both",
                   help="which side the keywords and PII behaviour apply to (default both)")
    g.add_argument("--fallback", action=argparse.BooleanOptionalAction, default=None,
                   help="fall back to the other served entities when one fails (external models)")
    if changing:
        g.add_argument("--no-inference-table", action="store_true", help="disable the inference table")
        g.add_argument("--no-rate-limits", action="store_true", help="remove every rate limit")
        g.add_argument("--replace", action="store_true", help="start from no settings instead of the current ones")


def _rate_limits(opts: argparse.Namespace) -> list | None:
    from jupyter_serving.core import ai_gateway

    limits: list[Any] = list(opts.rate_limit or [])
    if opts.calls is not None or opts.tokens is not None:
        limits.append(ai_gateway.rate_limit(opts.calls, opts.tokens, opts.per))
    elif opts.per:
        raise InvalidInputError("--per needs --calls or --tokens", "e.g. --calls 100 --per user.")
    if getattr(opts, "no_rate_limits", False):
        if limits:
            raise InvalidInputError("Give either --no-rate-limits or rate limits, not both", "")
        return []
    return limits or None


def gateway_changes(opts: argparse.Namespace) -> dict | None:
    """The `core.ai_gateway.build` keyword arguments the flags give (None when they give none)."""
    table: Any = opts.inference_table
    if getattr(opts, "no_inference_table", False):
        if table:
            raise InvalidInputError("Give either --inference-table or --no-inference-table, not both", "")
        table = False
    changes = {"usage_tracking": opts.usage_tracking, "inference_table": table, "rate_limits": _rate_limits(opts),
               "guardrail_keywords": opts.guardrail_keywords, "pii": opts.pii, "fallback": opts.fallback}
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return None
    return {**changes, "guardrails_on": opts.guardrails_on}


def gateway_config(opts: argparse.Namespace) -> dict | None:
    """The `ai_gateway` of a new endpoint from the flags (None when none is given)."""
    from jupyter_serving.core import ai_gateway

    changes = gateway_changes(opts)
    return ai_gateway.build({}, **changes) if changes else None


def complete_gateway_values(typed: Typed) -> list[str]:
    if typed.prev == "--per":
        return PER_VALUES
    if typed.prev == "--pii":
        return ["block", "mask", "none"]
    if typed.prev == "--guardrails-on":
        return ["input", "output", "both"]
    if typed.prev == "--task":
        return list(TASK_CHOICES)
    if typed.prev == "--external":
        return ["openai:"]
    return []


# -- %serve create ---------------------------------------------------------------------------------

def add_external_arguments(p: CommandParser) -> None:
    g = p.add_argument_group("External model")
    g.add_argument("--external", metavar="PROVIDER:MODEL", help="forward to an external model, e.g. openai:gpt-4o")
    g.add_argument("--api-base", metavar="URL", help="the provider's API base, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--secret", metavar="SCOPE/KEY", help="the secret holding the API key")
    g.add_argument("--task", choices=TASK_CHOICES, help="the external model's task (default chat)")


def check_external_options(opts: argparse.Namespace) -> None:
    """External-model options only go with --external, and --external with no --model."""
    given = [f for f, v in (("--api-base", opts.api_base), ("--secret", opts.secret), ("--task", opts.task)) if v]
    if given and not opts.external:
        raise InvalidInputError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --external",
                                "e.g. --external openai:gpt-4o-mini --api-base URL --secret SCOPE/KEY.")
    if opts.external and (opts.entities or opts.from_json):
        raise InvalidInputError("Give either --external or --model/--from-json, not both",
                                "An endpoint serves external models or registered models: create two endpoints.")
    if opts.external and not opts.secret:
        raise InvalidInputError("An external model needs its API key: give --secret SCOPE/KEY",
                                "Store the key with `jupyter-serving local secrets put SCOPE KEY` (or "
                                "`WorkspaceClient().secrets.put_secret(...)`), then give --secret SCOPE/KEY.")


def external_call(client, opts: argparse.Namespace, common: dict):
    """`create_external(...)` for `--external PROVIDER:MODEL`, as a `ctx.wait` call."""
    from jupyter_serving.core.genai import parse_external

    provider, model = parse_external(opts.external)
    return lambda **wait: client.create_external(
        opts.name, model, provider=provider, task=opts.task or "chat", api_base=opts.api_base, secret=opts.secret,
        tags=common.get("tags"), description=common.get("description"), ai_gateway=common.get("ai_gateway"),
        **wait)


def pt_config(client, entities: list[argparse.Namespace]) -> dict | None:
    """The config of `--model M --version V --pt-units N ...` groups (None when no group has --pt-units;
    every group must then have it)."""
    from jupyter_serving.core.genai import pt_entity

    with_units = [e for e in entities if e.pt_units is not None]
    if not with_units:
        for e in entities:
            if e.burst_scaling is not None:
                raise InvalidInputError("--burst-scaling goes with --pt-units", "e.g. --pt-units 50 --no-burst-scaling.")
        return None
    if len(with_units) != len(entities):
        raise InvalidInputError("Give --pt-units for every served entity, or for none",
                                "A provisioned-throughput endpoint's entities all have model units.")
    from jupyter_serving.core.rules import served_entity

    config: dict = {"served_entities": []}
    for e in entities:  # workload options beside the units are kept: the rules refuse them
        entity = served_entity(e.model, e.version if e.version else client.latest_version(e.model),
                               workload_type=e.workload_type, workload_size=e.workload_size,
                               min_concurrency=e.min_concurrency, max_concurrency=e.max_concurrency,
                               scale_to_zero=e.scale_to_zero)
        entity.update(pt_entity(e.model, entity["entity_version"], e.pt_units, name=e.entity_name,
                                burst_scaling=e.burst_scaling))
        config["served_entities"].append(entity)
    return config


def created_line(status) -> str:
    """What the new endpoint is, for GenAI endpoints ('' otherwise): an agent and its task, an external
    model, provisioned throughput."""
    from jupyter_serving.core.genai import describe_genai

    if status is None or not getattr(status, "is_ready", False):
        return ""
    return describe_genai(status.raw)


class GatewaySettings(dict):
    """An endpoint's `ai_gateway`, shown in words."""

    def __init__(self, name: str, settings: dict):
        super().__init__(settings)
        self.endpoint = name

    def __repr__(self) -> str:
        from jupyter_serving.core.ai_gateway import describe

        return "\n".join([f"AI Gateway of endpoint '{self.endpoint}':", *(f"  {line}" for line in describe(self))])
