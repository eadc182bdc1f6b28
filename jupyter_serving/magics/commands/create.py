"""`%serve create` and `%serve update`: deploy served entities (options, or a JSON config)."""
from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path
from typing import Any

from jupyter_serving.core.errors import InvalidInputError
from jupyter_serving.magics.completion import Typed, workload_values
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.errors import MagicUsageError
from jupyter_serving.magics.genai_options import (
    add_external_arguments,
    add_gateway_arguments,
    check_external_options,
    complete_gateway_values,
    created_line,
    external_call,
    gateway_config,
    pt_config,
)
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command

CREATE_DESCRIPTION = (
    "Create an endpoint. Entity options follow each --model: "
    "`create NAME --model M --version 1 [--workload-size Small] [--model M2 --version 2 ...] "
    "[--traffic E1=80 E2=20]`. Entity options: --model/-m, --version, --entity-name, "
    "--workload-type, --workload-size, --min-concurrency, --max-concurrency, --scale-to-zero, "
    "--pt-units N (provisioned throughput), --burst-scaling/--no-burst-scaling. "
    "An external model: `create NAME --external openai:MODEL --api-base URL --secret SCOPE/KEY "
    "[--task chat|completions|embeddings]`. Agents are registered models: --model M --version V.")


def json_argument(ref: str, ns: dict) -> dict:
    """--from-json FILE or $VAR (a dict, or a JSON string)."""
    if ref.startswith("$"):
        var = ref[1:]
        if var not in ns:
            raise InvalidInputError(f"Unknown variable {ref}", f"Define {var} in the notebook first.")
        value = ns[var]
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            raise InvalidInputError(f"{ref} is a {type(value).__name__}", "Use a dict or a JSON string.")
        text, what = value, f"variable {ref}"
    else:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise InvalidInputError(f"No such file '{ref}'", "Give the path of a JSON file, or $var.")
        text, what = path.read_text(), f"file {ref}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"Malformed JSON in {what} at line {err.lineno}, column {err.colno}: {err.msg}",
                                "Fix the JSON (double quotes, no trailing commas).") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"The JSON in {what} is not an object", 'e.g. {"served_entities": [...]}.')
    return value


# -- create ----------------------------------------------------------------------------------------

@cache
def entity_parser() -> CommandParser:
    """The options of one served entity: `--model M` and the options that follow it."""
    p = CommandParser("%serve create --model", "`%serve help create` shows the usage.")
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--version")
    p.add_argument("--entity-name")
    p.add_argument("--workload-type")
    p.add_argument("--workload-size")
    p.add_argument("--min-concurrency", type=int)
    p.add_argument("--max-concurrency", type=int)
    p.add_argument("--scale-to-zero", action="store_true", default=None)
    p.add_argument("--pt-units", type=int)
    p.add_argument("--burst-scaling", action=argparse.BooleanOptionalAction, default=None)
    return p


def _split_entities(args: list[str]) -> tuple[list[str], list[list[str]]]:
    """The endpoint's own options, and one group of options per `--model`."""
    takes_value = entity_parser().option_arity()
    head: list[str] = []
    groups: list[list[str]] = []
    i = 0
    while i < len(args):
        tok = args[i]
        opt = tok.split("=", 1)[0] if tok.startswith("--") else tok
        if opt in takes_value:
            if opt in ("--model", "-m"):
                groups.append([])
            elif not groups:
                raise MagicUsageError(f"%serve create: {opt} must follow a --model",
                                      "Write --model M --version V ... for each served entity.")
            groups[-1].append(tok)
            if takes_value[opt] and "=" not in tok:
                if i + 1 >= len(args):
                    raise MagicUsageError(f"%serve create: {opt} needs a value", "`%serve help create`.")
                i += 1
                groups[-1].append(args[i])
        else:
            head.append(tok)
        i += 1
    return head, groups


def _parse_create(parser: CommandParser, args: list[str]) -> argparse.Namespace:
    head, groups = _split_entities(args)
    opts = parser.parse_args(head)
    opts.entities = [entity_parser().parse_args(g) for g in groups]
    return opts


def _create_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--traffic", nargs="+", metavar="E=P", help="traffic split between entities")
    p.add_argument("--tag", action="append", default=[], metavar="K=V", help="a tag (repeatable)")
    p.add_argument("--route-optimized", action="store_true")
    p.add_argument("--description")
    p.add_argument("--from-json", metavar="FILE_OR_$VAR", help="a full config (JSON file or variable)")
    p.add_argument("--no-wait", action="store_true", help="return without waiting for READY")
    p.add_argument("--timeout", type=float, help="seconds to wait (default ServeMagics.wait_timeout)")
    add_external_arguments(p)
    add_gateway_arguments(p)


def _complete_create(typed: Typed) -> list[str]:
    return workload_values(typed) or complete_gateway_values(typed)


def _served_entities(client, entities: list[argparse.Namespace]) -> dict:
    from jupyter_serving import api

    return {"served_entities": [api.served_entity(
        e.model, e.version if e.version else client.latest_version(e.model), name=e.entity_name,
        workload_type=e.workload_type, workload_size=e.workload_size, min_concurrency=e.min_concurrency,
        max_concurrency=e.max_concurrency, scale_to_zero=e.scale_to_zero) for e in entities]}


def _create_call(ctx: Context, client, opts):
    """The `client.create...(**wait)` call the options describe."""
    from jupyter_serving.core.arguments import parse_tags, parse_traffic

    kwargs: dict[str, Any] = {
        "traffic": parse_traffic(opts.traffic) if opts.traffic else None,
        "tags": parse_tags(opts.tag) if opts.tag else None,
        "route_optimized": True if opts.route_optimized else None,
        "description": opts.description,
        "ai_gateway": gateway_config(opts),
    }
    check_external_options(opts)
    if opts.external:
        return external_call(client, opts, kwargs)
    config = json_argument(opts.from_json, ctx.ns) if opts.from_json else None
    if config is not None and opts.entities:
        raise InvalidInputError("Give either --from-json or --model, not both",
                                "Put every served entity in the JSON config, or use --model groups.")
    pt = pt_config(client, opts.entities)
    if pt is not None:
        config = pt
    elif len(opts.entities) == 1:
        e = opts.entities[0]
        kwargs.update(model=e.model, version=e.version, entity_name=e.entity_name,
                      workload_type=e.workload_type, workload_size=e.workload_size,
                      min_concurrency=e.min_concurrency, max_concurrency=e.max_concurrency,
                      scale_to_zero=bool(e.scale_to_zero))
    elif len(opts.entities) > 1:
        config = _served_entities(client, opts.entities)
    return lambda **wait: client.create(opts.name, config, **kwargs, **wait)


@command("create", "create an endpoint: `create NAME --model M [--version V] ...` (or --external, --pt-units)",
         arguments=_create_arguments, description=CREATE_DESCRIPTION, parse=_parse_create, complete=_complete_create,
         extra_options=lambda: entity_parser().long_options())
def create(ctx: Context, opts):
    client = ctx.client()
    status = ctx.wait(_create_call(ctx, client, opts), opts.name,
                      verb="Creating", doing="deploying", no_wait=opts.no_wait, timeout=opts.timeout)
    if status is None:
        return None
    ctx.names.forget()
    if opts.no_wait:
        print(f"Creating endpoint '{opts.name}'; follow it with `%serve status {opts.name} --watch`.")
    elif created_line(status):
        print(created_line(status))
    return status


# -- update ----------------------------------------------------------------------------------------

def _update_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--entity", help="the served entity to change (optional if there is one)")
    p.add_argument("--model", "-m", help="serve another model in this entity")
    p.add_argument("--version")
    p.add_argument("--workload-type")
    p.add_argument("--workload-size")
    p.add_argument("--min-concurrency", type=int)
    p.add_argument("--max-concurrency", type=int)
    p.add_argument("--scale-to-zero", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--traffic", nargs="+", metavar="E=P")
    p.add_argument("--from-json", metavar="FILE_OR_$VAR", help="a full core config")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--timeout", type=float)


def _complete_update(typed: Typed) -> list[str]:
    if typed.prev == "--entity" and len(typed.words) > 3:
        return typed.names.entities(typed.words[2])
    return workload_values(typed)


@command("update", "change a served entity: `update NAME --entity E --version V ...`",
         arguments=_update_arguments, takes_name=True, complete=_complete_update)
def update(ctx: Context, opts):
    from jupyter_serving.core.arguments import parse_traffic

    client = ctx.client()
    config = json_argument(opts.from_json, ctx.ns) if opts.from_json else None
    kwargs: dict[str, Any] = dict(
        entity=opts.entity, model=opts.model, version=opts.version, workload_type=opts.workload_type,
        workload_size=opts.workload_size, min_concurrency=opts.min_concurrency,
        max_concurrency=opts.max_concurrency, scale_to_zero=opts.scale_to_zero,
        traffic=parse_traffic(opts.traffic) if opts.traffic else None, config=config)
    status = ctx.wait(lambda **wait: client.update_config(opts.name, **kwargs, **wait), opts.name,
                      verb="Updating", doing="updating", no_wait=opts.no_wait, timeout=opts.timeout)
    if status is not None and opts.no_wait:
        print(f"Updating endpoint '{opts.name}'; follow it with `%serve status {opts.name} --watch`.")
    return status
