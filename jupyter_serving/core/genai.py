"""GenAI served entities from short arguments (pure): external models (`openai:gpt-4o-mini`, a secret
`scope/key`, a task `chat`) and provisioned-throughput entities, and what their settings mean.

These only build the `served_entities[]` items and refuse what cannot be parsed (with a fix per
front-end); what the items must hold is checked by `core.rules` (`normalize_config`, which calls
`core.external_models.validate_external_model`), the one definition the backend applies too.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jupyter_serving.core import rules
from jupyter_serving.core.errors import Hint, InvalidInputError

__all__ = ["AGENT_TASKS", "EXAMPLE_BODIES", "TASKS", "describe_genai", "external_entity", "is_agent_task", "is_pt_config", "parse_external",
           "parse_secret", "pt_entity", "pt_throughput_text", "secret_reference", "task_of"]

# `--task chat` and friends -> the external-model task (a full task passes through unchanged).
TASKS = {"chat": "llm/v1/chat", "completions": "llm/v1/completions", "embeddings": "llm/v1/embeddings"}
# The MLmodel metadata tasks of agents (ResponsesAgent, ChatAgent, a ChatModel logged as an agent).
AGENT_TASKS = ("agent/v1/responses", "agent/v2/chat", "agent/v1/chat")
# What a query of each kind of endpoint looks like (the success line of `%serve create` shows it).
EXAMPLE_BODIES = {
    "agent/v1/responses": '{"input": [{"role": "user", "content": "Hello"}]}',
    "agent/v2/chat": '{"messages": [{"role": "user", "content": "Hello"}]}',
    "agent/v1/chat": '{"messages": [{"role": "user", "content": "Hello"}]}',
    "llm/v1/chat": '{"messages": [{"role": "user", "content": "Hello"}]}',
    "llm/v1/completions": '{"prompt": "Hello", "max_tokens": 16}',
    "llm/v1/embeddings": '{"input": ["Hello"]}',
}

EXTERNAL_HINT = Hint(python="Give the provider and its model name, e.g. model='gpt-4o-mini', provider='openai'.",
                     magic="Write --external PROVIDER:MODEL, e.g. --external openai:gpt-4o-mini.")
SECRET_HINT = Hint(
    python="Name a secret as 'scope/key' (store it with `w.secrets.put_secret(scope, key, string_value=...)` or "
           "`jupyter-serving local secrets put SCOPE KEY`).",
    magic="Write --secret SCOPE/KEY (store the key with `jupyter-serving local secrets put SCOPE KEY`, or "
          "`WorkspaceClient().secrets.put_secret(...)`).")


def task_of(task: str | None) -> str:
    """'chat' -> 'llm/v1/chat' (also 'completions', 'embeddings'); a full task as given; None -> chat."""
    if task in (None, ""):
        return TASKS["chat"]
    text = str(task).strip()
    return TASKS.get(text.lower(), text)


def is_agent_task(task: Any) -> bool:
    return isinstance(task, str) and task.startswith("agent/")


def parse_external(spec: str) -> tuple[str, str]:
    """'openai:gpt-4o-mini' -> ('openai', 'gpt-4o-mini'); the model keeps any later ':' ('llama3:8b')."""
    provider, sep, model = str(spec or "").strip().partition(":")
    if not sep or not provider.strip() or not model.strip():
        raise InvalidInputError(f"External model '{spec}' does not name a provider and a model", EXTERNAL_HINT)
    return provider.strip().lower(), model.strip()


def parse_secret(spec: str) -> tuple[str, str]:
    """'scope/key' (or a '{{secrets/scope/key}}' reference) -> (scope, key)."""
    text = str(spec or "").strip()
    found = rules.secret_reference(text)
    if found is not None:
        return found
    scope, sep, key = text.partition("/")
    if not sep or not rules.SECRET_NAME_RE.fullmatch(scope) or not rules.SECRET_NAME_RE.fullmatch(key):
        raise InvalidInputError(f"Secret '{text[:80]}' is not SCOPE/KEY (names of letters, digits, '.', '-' and '_')",
                                SECRET_HINT)
    return scope, key


def secret_reference(scope: str, key: str) -> str:
    """The `{{secrets/scope/key}}` reference an external model's `openai_api_key` holds."""
    return "{{secrets/" + scope + "/" + key + "}}"


def external_entity(model: str, *, provider: str = "openai", task: str | None = None,
                    api_base: str | None = None, secret: str | tuple[str, str] | None = None,
                    api_key_plaintext: str | None = None, name: str | None = None,
                    organization: str | None = None) -> dict:
    """A served entity forwarding to an external model. `secret` is 'scope/key' or (scope, key); the key is
    never echoed by anything here."""
    config: dict[str, Any] = {}
    if api_base:
        config["openai_api_base"] = str(api_base).strip()
    if secret:
        scope, key = secret if isinstance(secret, tuple) else parse_secret(secret)
        config["openai_api_key"] = secret_reference(scope, key)
    if api_key_plaintext:
        config["openai_api_key_plaintext"] = api_key_plaintext
    if organization:
        config["openai_organization"] = organization
    external: dict[str, Any] = {"name": str(model or "").strip(), "provider": str(provider or "").strip().lower(),
                                "task": task_of(task)}
    if external["provider"] == "openai" or config:
        external["openai_config"] = config
    entity: dict[str, Any] = {"external_model": external}
    if name:
        entity["name"] = name
    return entity


def pt_entity(model: str, version: str | int | None, units: Any, *, name: str | None = None,
              burst_scaling: bool | None = None) -> dict:
    """A provisioned-throughput served entity (`PtServedModel`): model, version, model units."""
    entity = rules.served_entity(model, version, name=name)
    entity["provisioned_model_units"] = units
    if burst_scaling is not None:
        entity["burst_scaling_enabled"] = bool(burst_scaling)
    return entity


def is_pt_config(core: Mapping | None) -> bool:
    """Whether every served entity of a core config is provisioned throughput (the PT create API's configs)."""
    entities = list((core or {}).get("served_entities") or [])
    return bool(entities) and all(rules.is_provisioned(e) for e in entities)


def pt_throughput_text(units: Any, burst_scaling: bool = True) -> str:
    """'50 model units: 5,000 tokens/s locally (10,000 with burst scaling) · 4 concurrent requests';
    '' when `units` is not a valid number of units (the rules say why)."""
    entity = {"provisioned_model_units": units, "burst_scaling_enabled": bool(burst_scaling)}
    try:
        rules.normalize_config({"served_entities": [{"entity_name": "m", "entity_version": "1", **entity}]})
    except rules.RuleViolation:
        return ""
    base = rules.pt_tokens_per_s({**entity, "burst_scaling_enabled": False})
    _, concurrency = rules.entity_concurrency(entity)
    burst = f" ({rules.pt_tokens_per_s(entity):,} with burst scaling)" if burst_scaling else ""
    return (f"{units} model unit{'s' if units != 1 else ''}: {base:,} tokens/s locally{burst} · "
            f"{concurrency} concurrent requests")


def describe_genai(status_raw: Mapping) -> str:
    """What a ready GenAI endpoint is, in one sentence ('' for a classic model): an agent or an LLM task
    with the body to query it, an external model and where it forwards, provisioned throughput."""
    name = status_raw.get("name", "")
    entities = list((status_raw.get("config") or {}).get("served_entities") or [])
    task = status_raw.get("task")
    parts: list[str] = []
    external = [e["external_model"] for e in entities if e.get("external_model")]
    if external:
        ext = external[0]
        base = (ext.get("openai_config") or {}).get("openai_api_base") or "the provider's default API"
        parts.append(f"'{name}' forwards to {ext.get('provider')}:{ext.get('name')} ({ext.get('task')}) at {base}")
        task = task or ext.get("task")
    elif is_agent_task(task):
        parts.append(f"'{name}' serves an agent ({task})")
    elif task:
        parts.append(f"'{name}' serves {task}")
    units = [e for e in entities if rules.is_provisioned(e)]
    text = pt_throughput_text(units[0]["provisioned_model_units"],
                              units[0].get("burst_scaling_enabled", True)) if units else ""
    if text:
        parts.append(f"{'it' if parts else repr(name)} has provisioned throughput: {text}")
    if not parts:
        return ""
    sentence = "; ".join(parts)
    body = EXAMPLE_BODIES.get(task or "")
    if body:
        sentence += f". Query it with `%%query {name}` and {body}"
    return sentence + "."
