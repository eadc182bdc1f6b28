"""Building endpoint config requests (pure): the create request from a config or a model, and the
core config of an update that changes one served entity.

Expected mistakes raise `InvalidInputError` with a fix per front-end; the rules themselves
(names, concurrency, traffic) are checked afterwards by `core.rules.normalize_config`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jupyter_serving.core import rules
from jupyter_serving.core.arguments import routes_to_traffic_config
from jupyter_serving.core.errors import Hint, InvalidInputError

__all__ = ["ENTITY_CHANGES", "NOTHING_TO_UPDATE", "change_entity", "create_request", "input_entity",
           "split_create_config", "update_core_config"]

# update_config's keyword arguments that change one served entity.
ENTITY_CHANGES = ("model", "version", "workload_type", "workload_size", "min_concurrency", "max_concurrency",
                  "scale_to_zero")


def _plain(config: Mapping) -> dict:
    """A JSON-only deep copy (dates and the like become strings)."""
    return json.loads(json.dumps(dict(config), default=str))


def split_create_config(name: str, config: Any) -> tuple[dict, dict]:
    """`config` (the core config, or a full create request) -> (request fields but config, core config)."""
    if not isinstance(config, Mapping):
        raise InvalidInputError("The endpoint config must be a JSON object",
                                'e.g. {"served_entities": [{"entity_name": "...", "entity_version": "1"}]}.')
    config = _plain(config)
    if "config" not in config and ("name" not in config or "served_entities" in config):
        return {}, config
    request = {k: v for k, v in config.items() if k != "config"}
    if request.get("name") not in (None, name):
        raise InvalidInputError(f"The config names endpoint '{request['name']}' but the command names '{name}'",
                                "Make the two names agree.")
    return request, dict(config.get("config") or {})


def update_core_config(config: Any) -> dict:
    """The core config of `update_config(config=...)` (a full request's `config`, or the config itself)."""
    if not isinstance(config, Mapping):
        raise InvalidInputError("The endpoint config must be a JSON object",
                                'e.g. {"served_entities": [...], "traffic_config": {...}}.')
    return _plain(config.get("config", config))


def create_request(name: str, core: dict, request: dict | None = None, *, traffic: Mapping[str, int] | None = None,
                   tags: Mapping[str, str] | list | None = None, route_optimized: bool | None = None,
                   description: str | None = None) -> dict:
    """The POST /serving-endpoints body: `request`'s fields, then the arguments given, then `core`."""
    request = dict(request or {})
    if traffic:
        core["traffic_config"] = routes_to_traffic_config(dict(traffic))
    request["name"] = name
    if tags is not None:
        request["tags"] = [{"key": k, "value": v} for k, v in tags.items()] if isinstance(tags, Mapping) else list(tags)
    if route_optimized is not None:
        request["route_optimized"] = bool(route_optimized)
    if description is not None:
        request["description"] = description
    request["config"] = core
    return request


def input_entity(entity: dict, fields: set[str] | frozenset[str]) -> dict:
    """A served entity as GET returns it -> the input form PUT /config accepts (only `fields`).

    A workload size and the concurrency range it implies come back together; keep whichever was set.
    """
    out = {k: v for k, v in entity.items() if k in fields and v is not None}
    size = out.get("workload_size")
    if size and ("min_provisioned_concurrency" in out or "max_provisioned_concurrency" in out):
        low, high = rules.WORKLOAD_SIZES.get(size, (None, None))
        cur = (out.get("min_provisioned_concurrency"), out.get("max_provisioned_concurrency"))
        if cur in ((low, high), (0, high)):
            out.pop("min_provisioned_concurrency", None)
            out.pop("max_provisioned_concurrency", None)
        else:
            out.pop("workload_size", None)
    return out


def _apply(ent: dict, changes: Mapping[str, Any]) -> None:
    for arg, field in (("model", "entity_name"), ("workload_type", "workload_type")):
        if changes.get(arg) is not None:
            ent[field] = changes[arg]
    if changes.get("version") is not None:
        ent["entity_version"] = str(changes["version"])
    if changes.get("workload_size") is not None:
        ent["workload_size"] = changes["workload_size"]
        ent.pop("min_provisioned_concurrency", None)
        ent.pop("max_provisioned_concurrency", None)
    low, high = changes.get("min_concurrency"), changes.get("max_concurrency")
    if low is not None or high is not None:
        ent.pop("workload_size", None)
        if low is not None:
            ent["min_provisioned_concurrency"] = low
        if high is not None:
            ent["max_provisioned_concurrency"] = high
    if changes.get("scale_to_zero") is not None:
        ent["scale_to_zero_enabled"] = bool(changes["scale_to_zero"])


def change_entity(entities: list[dict], routes: dict[str, int], target: str,
                  changes: Mapping[str, Any]) -> dict[str, int]:
    """Apply `changes` (ENTITY_CHANGES keywords) to the entity named `target` in place; return the routes.

    An entity with its default name (`iris-1`) whose model or version changes is renamed to the new
    default (`iris-2`), and its traffic moves along.
    """
    ent = next(e for e in entities if e.get("name") == target)
    old_default = rules.default_entity_name(ent.get("entity_name", ""), ent.get("entity_version"))
    _apply(ent, changes)
    renames = changes.get("model") is not None or changes.get("version") is not None
    if renames and target == old_default:
        new_name = rules.default_entity_name(ent["entity_name"], ent.get("entity_version"))
        if new_name != target and new_name not in {e.get("name") for e in entities}:
            ent["name"] = new_name
            routes = {(new_name if k == target else k): v for k, v in routes.items()}
    return routes


NOTHING_TO_UPDATE = Hint(
    python="Give version=, model=, workload_type=, workload_size=, min_concurrency= and max_concurrency=, "
           "scale_to_zero= or traffic=.",
    magic="Give --version, --model, --workload-type, --workload-size, --min/--max-concurrency, --scale-to-zero "
          "or --traffic.")
