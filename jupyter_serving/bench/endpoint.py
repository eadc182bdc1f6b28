"""The endpoint side of a benchmark, over `api.ServingClient`: credentials for the load generator,
the payload, readiness, the concurrency the endpoint provides, and applying a recommendation.

Load goes straight to the invocation URL with the client's host and bearer token; everything else
(schema, status, updates) goes through the client's public methods.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jupyter_serving.bench.errors import BenchError
from jupyter_serving.core.errors import ServingError
from jupyter_serving.core.rules import entity_concurrency
from jupyter_serving.core.templates import request_template_from_openapi


def host_and_token(client) -> tuple[str, str | None]:
    """The workspace URL and a bearer token for the load generator, from the client's SDK config
    (PAT, OAuth and the local backend all authenticate with `Authorization: Bearer ...`)."""
    host = (getattr(client, "host", None) or client.workspace.config.host or "").rstrip("/")
    headers = client.workspace.config.authenticate() or {}
    auth = headers.get("Authorization") or headers.get("authorization")
    if auth is None:
        return host, None
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise BenchError("The benchmark needs bearer-token authentication",
                         "Connect with a personal access token or OAuth (`%serve connect --profile NAME`).")
    return host, token


def default_payload(client, name: str, entity: str | None = None) -> dict:
    """A request body from the endpoint's OpenAPI schema (its example, params with typed defaults)."""
    return request_template_from_openapi(client.openapi(name), entity)


def resolve_payload(client, name: str, payload: Any = None, entity: str | None = None,
                    user_ns: Mapping[str, Any] | None = None) -> Any:
    """What each request sends: the given DataFrame/dict/list/bytes; `$var` or a variable name
    from `user_ns`; a JSON string; or, with nothing given, the endpoint's schema example."""
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return default_payload(client, name, entity)
    if isinstance(payload, str):
        text = payload.strip()
        ref = text[1:] if text.startswith("$") else text
        if user_ns is not None and ref.isidentifier():
            if ref not in user_ns:
                raise BenchError(f"No variable named '{ref}' for the payload",
                                 "Define it first, or give a JSON body.")
            return user_ns[ref]
        try:
            return json.loads(text)
        except ValueError as err:
            raise BenchError(f"The payload is not valid JSON ({err})",
                             "Give a JSON body, a DataFrame/dict variable ($df), or nothing for the "
                             "schema's example.") from None
    return payload


def entity_limit(status, entity: str | None = None) -> int | None:
    """The concurrency the benchmarked entity (or, with several routed, all of them) provides."""
    entities = status.entities
    if entity is not None:
        entities = [e for e in entities if e.get("name") == entity]
    else:
        routed = {k for k, v in status.traffic.items() if v}
        if routed:
            entities = [e for e in entities if e.get("name") in routed]
    total = 0
    for e in entities:
        try:
            total += entity_concurrency(e)[1]
        except (TypeError, ValueError, KeyError):
            return None
    return total or None


def check_endpoint(client, name: str, entity: str | None = None):
    """The endpoint's status, refusing to benchmark one that cannot answer."""
    status = client.get(name)
    if status.is_stopped:
        raise BenchError(f"Endpoint '{name}' is stopped", f"Start it with `%serve start {name}` first.")
    if not status.is_ready:
        raise BenchError(f"Endpoint '{name}' is {status.state}, not ready",
                         f"Wait until it is READY (`%serve status {name} --watch`).")
    if entity is not None and entity not in status.entity_names:
        raise BenchError(f"Endpoint '{name}' has no served entity '{entity}' (served entities: "
                         f"{', '.join(status.entity_names) or 'none'})", "Use one of those names.")
    return status


def limit_notes(levels: Iterable[int], limit: int | None) -> list[str]:
    above = [c for c in levels if limit is not None and c > limit]
    if not above:
        return []
    return [f"Concurrency {', '.join(map(str, above))} is above the {limit} concurrent requests the "
            f"endpoint provides: expect 429 responses there (the endpoint refusing load, not serving "
            f"it); sizing leaves such steps out."]


def config_changes(recommendation, custom: bool = False) -> dict:
    """`Recommendation.served_entity_config()` as `ServingClient.update_config` keyword arguments."""
    config = recommendation.served_entity_config(custom)
    kwargs: dict[str, Any] = {}
    if "workload_size" in config:
        kwargs["workload_size"] = config["workload_size"]
    if "min_provisioned_concurrency" in config:
        kwargs["min_concurrency"] = int(config["min_provisioned_concurrency"])
        kwargs["max_concurrency"] = int(config["max_provisioned_concurrency"])
    if "scale_to_zero_enabled" in config:
        kwargs["scale_to_zero"] = bool(config["scale_to_zero_enabled"])
    return kwargs


def apply_recommendation(client, name: str, recommendation, *, entity: str | None = None,
                         custom: bool = False, wait: bool = True, timeout: float = 1200.0,
                         on_progress: Callable | None = None):
    """Resize one served entity as recommended (workload size, or min/max provisioned concurrency
    with `custom` or when no size fits), keeping the rest of its config; with `wait`, follow the
    update until the endpoint is READY again. Returns the endpoint's status."""
    status = client.update_config(name, entity=entity, wait=wait, timeout=timeout, on_progress=on_progress,
                                  **config_changes(recommendation, custom))
    if wait and not status.is_ready:
        raise ServingError(f"Endpoint '{name}' settled as {status.state} after the update",
                           f"See `%serve status {name}`.")
    return status
