"""Endpoint configuration rules, shared by the local backend, the Python API and the widgets.

Pure: no I/O. Every violation raises `RuleViolation` with the Databricks `error_code` the server
would answer and a message that says what is wrong and how to fix it.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from jupyter_serving.core.workloads import (
    CLOUDS,
    CONCURRENCY_STEP,
    WORKLOAD_SIZES,
    all_workload_type_names,
    find_workload_type,
    workload_types,
)

MAX_SERVED_ENTITIES = 10
RESERVED_PREFIX = "databricks-"
# Endpoint and served-entity names: one charset for both (the server's rule). Matched whole with
# `fullmatch` (a `$` would let a trailing newline through).
NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
NAME_CHARS = "letters, digits, '-' and '_'"
MAX_NAME_LENGTH = 63

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_CONFLICT = "RESOURCE_CONFLICT"


class RuleViolation(ValueError):
    def __init__(self, message: str, error_code: str = INVALID_PARAMETER_VALUE):
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def validate_endpoint_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise RuleViolation("Endpoint name is required.")
    if len(name) > MAX_NAME_LENGTH:
        raise RuleViolation(
            f"Endpoint name {name!r} is {len(name)} characters long; use at most {MAX_NAME_LENGTH}."
        )
    if not NAME_RE.fullmatch(name):
        raise RuleViolation(f"Endpoint name {name!r} is invalid: use only {NAME_CHARS}.")
    if name.lower().startswith(RESERVED_PREFIX):
        raise RuleViolation(
            f"Endpoint name '{name}' is invalid: the prefix '{RESERVED_PREFIX}' is reserved; "
            "choose another name."
        )


def validate_entity_name(name: Any) -> None:
    """A served entity's name: the endpoint name's charset and length."""
    if isinstance(name, str) and len(name) > MAX_NAME_LENGTH:
        raise RuleViolation(f"Served entity name {name!r} is {len(name)} characters long; use at most "
                            f"{MAX_NAME_LENGTH}.")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise RuleViolation(f"Served entity name {name!r} is invalid: use only {NAME_CHARS}.")


def served_entity(
    model: str,
    version: str | int | None = None,
    *,
    name: str | None = None,
    workload_type: str | None = None,
    workload_size: str | None = None,
    min_concurrency: int | None = None,
    max_concurrency: int | None = None,
    scale_to_zero: bool | None = None,
    environment_vars: Mapping[str, str] | None = None,
) -> dict:
    """A `served_entities[]` item: only the fields given, under their API names."""
    entity: dict[str, Any] = {"entity_name": model}
    if version not in (None, ""):
        entity["entity_version"] = str(version)
    optional = {"name": name, "workload_type": workload_type, "workload_size": workload_size}
    entity.update({k: v for k, v in optional.items() if v})
    if min_concurrency is not None:
        entity["min_provisioned_concurrency"] = min_concurrency
    if max_concurrency is not None:
        entity["max_provisioned_concurrency"] = max_concurrency
    if scale_to_zero is not None:
        entity["scale_to_zero_enabled"] = bool(scale_to_zero)
    if environment_vars:
        entity["environment_vars"] = dict(environment_vars)
    return entity


def default_entity_name(entity_name: str, entity_version: Any) -> str:
    """Databricks' default served-entity name: last part of the model name, a dash, the version."""
    base = str(entity_name).split(".")[-1].split("/")[-1]
    return f"{base}-{entity_version}" if entity_version not in (None, "") else base


def entity_concurrency(entity: dict) -> tuple[int, int]:
    """(min, max) concurrent requests the served entity provides. Assumes a validated entity."""
    if entity.get("max_provisioned_concurrency") is not None:
        low = int(entity.get("min_provisioned_concurrency") or 0)
        return low, int(entity["max_provisioned_concurrency"])
    low, high = WORKLOAD_SIZES.get(entity.get("workload_size") or "Small", WORKLOAD_SIZES["Small"])
    if entity.get("scale_to_zero_enabled"):
        low = 0
    return low, high


def _validate_concurrency(entity: dict, label: str) -> None:
    size = entity.get("workload_size")
    has_min = entity.get("min_provisioned_concurrency") is not None
    has_max = entity.get("max_provisioned_concurrency") is not None
    if size is not None and (has_min or has_max):
        raise RuleViolation(
            f"{label}: workload_size cannot be combined with min/max_provisioned_concurrency; "
            "set one or the other."
        )
    if size is not None and size not in WORKLOAD_SIZES:
        raise RuleViolation(
            f"{label}: workload_size '{size}' is invalid; use one of {', '.join(WORKLOAD_SIZES)}."
        )
    if has_min != has_max:
        raise RuleViolation(
            f"{label}: set both min_provisioned_concurrency and max_provisioned_concurrency."
        )
    if has_min:
        low, high = entity["min_provisioned_concurrency"], entity["max_provisioned_concurrency"]
        for field, value in (("min_provisioned_concurrency", low), ("max_provisioned_concurrency", high)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise RuleViolation(f"{label}: {field} must be a non-negative integer, got {value!r}.")
            if value % CONCURRENCY_STEP:
                raise RuleViolation(
                    f"{label}: {field} is {value}; concurrency must be a multiple of "
                    f"{CONCURRENCY_STEP} (e.g. {max(CONCURRENCY_STEP, value // CONCURRENCY_STEP * CONCURRENCY_STEP)})."
                )
        if high == 0:
            raise RuleViolation(f"{label}: max_provisioned_concurrency must be at least {CONCURRENCY_STEP}.")
        if low > high:
            raise RuleViolation(
                f"{label}: min_provisioned_concurrency ({low}) exceeds max_provisioned_concurrency ({high})."
            )
        if low == 0 and not entity.get("scale_to_zero_enabled"):
            raise RuleViolation(
                f"{label}: min_provisioned_concurrency 0 needs scale_to_zero_enabled=true."
            )


def _validate_workload_type(entity: dict, label: str, cloud: str) -> None:
    wt = entity.get("workload_type")
    if wt is None:
        return
    if find_workload_type(cloud, wt) is None:
        offered = ", ".join(t.name for t in workload_types(cloud))
        if wt in all_workload_type_names():
            raise RuleViolation(
                f"{label}: workload type {wt} is not offered on {cloud.upper()}; choose one of {offered}."
            )
        raise RuleViolation(f"{label}: unknown workload type '{wt}'; choose one of {offered}.")


def _fold_served_models(config: dict) -> list:
    """`served_entities` plus the deprecated `served_models` under the entity field names."""
    entities = list(config.get("served_entities") or [])
    for model in config.pop("served_models", None) or []:
        model = dict(model)
        if "model_name" in model:
            model["entity_name"] = model.pop("model_name")
        if "model_version" in model:
            model["entity_version"] = model.pop("model_version")
        entities.append(model)
    return entities


def _normalize_entity(entity: Any, index: int, seen: set[str], cloud: str) -> None:
    """Validate one served entity in place, filling in its defaults; `seen` collects the names."""
    if not isinstance(entity, dict):
        raise RuleViolation(f"Served entity #{index + 1} must be a JSON object.")
    if not entity.get("entity_name"):
        raise RuleViolation(f"Served entity #{index + 1} has no entity_name: name the model to serve.")
    if entity.get("entity_version") in (None, ""):
        raise RuleViolation(
            f"Served entity #{index + 1} ({entity['entity_name']}) has no entity_version: "
            "name the model version to serve."
        )
    entity["entity_version"] = str(entity["entity_version"])
    if not entity.get("name"):
        entity["name"] = default_entity_name(entity["entity_name"], entity["entity_version"])
    name = entity["name"]
    validate_entity_name(name)
    if name in seen:
        raise RuleViolation(f"Served entity name '{name}' is used twice; give each served entity a unique name.")
    seen.add(name)
    label = f"Served entity '{name}'"
    _validate_concurrency(entity, label)
    _validate_workload_type(entity, label, cloud)
    if entity.get("workload_size") is None and entity.get("max_provisioned_concurrency") is None:
        entity["workload_size"] = "Small"
    entity.setdefault("scale_to_zero_enabled", False)
    entity.setdefault("workload_type", "CPU")


def normalize_config(config: Any, cloud: str = "aws") -> dict:
    """Validate an endpoint config and return it normalized: `served_models` folded into
    `served_entities`, default entity names filled in, a 100 % route for a single entity."""
    if cloud not in CLOUDS:
        raise RuleViolation(f"Unknown cloud '{cloud}'; use one of {', '.join(CLOUDS)}.")
    if not isinstance(config, dict):
        raise RuleViolation("The endpoint config must be a JSON object.")
    config = copy.deepcopy(config)
    entities = _fold_served_models(config)
    if not entities:
        raise RuleViolation(
            "The config serves nothing: add at least one served entity (entity_name and entity_version)."
        )
    if len(entities) > MAX_SERVED_ENTITIES:
        raise RuleViolation(
            f"The config has {len(entities)} served entities; at most {MAX_SERVED_ENTITIES} are allowed."
        )
    seen: set[str] = set()
    for index, entity in enumerate(entities):
        _normalize_entity(entity, index, seen, cloud)
    config["served_entities"] = entities
    config["traffic_config"] = {"routes": normalize_routes(config.get("traffic_config"), [e["name"] for e in entities])}
    return config


def normalize_routes(traffic_config: Any, entity_names: list[str]) -> list[dict]:
    """Validate traffic routes against the served entity names; default to 100 % for one entity."""
    routes = (traffic_config or {}).get("routes") if isinstance(traffic_config, dict) else None
    if not routes:
        if len(entity_names) == 1:
            return [{"served_model_name": entity_names[0], "traffic_percentage": 100}]
        raise RuleViolation(
            f"With {len(entity_names)} served entities, traffic_config.routes must split traffic "
            f"between {', '.join(entity_names)} (percentages summing to 100)."
        )
    normalized: list[dict] = []
    named: set[str] = set()
    for route in routes:
        target = route.get("served_entity_name") or route.get("served_model_name")
        if target not in entity_names:
            raise RuleViolation(
                f"Traffic route names '{target}', which is not a served entity; "
                f"served entities: {', '.join(entity_names)}."
            )
        if target in named:
            raise RuleViolation(f"Traffic route for '{target}' appears twice; give one route per entity.")
        named.add(target)
        pct = route.get("traffic_percentage")
        if not isinstance(pct, int) or isinstance(pct, bool) or not 0 <= pct <= 100:
            raise RuleViolation(
                f"Traffic percentage for '{target}' must be an integer from 0 to 100, got {pct!r}."
            )
        normalized.append({"served_model_name": target, "traffic_percentage": pct})
    total = sum(r["traffic_percentage"] for r in normalized)
    if total != 100:
        split = ", ".join(f"{r['served_model_name']}={r['traffic_percentage']}" for r in normalized)
        raise RuleViolation(
            f"Traffic percentages sum to {total}; they must sum to 100 "
            f"(got {split})."
        )
    return normalized


RATE_LIMIT_PERIODS = ("minute", "hour", "day")
RATE_LIMIT_KEYS = ("user", "endpoint", "user_group", "service_principal")


def validate_rate_limits(limits: Any) -> None:
    """Endpoint and AI-gateway `rate_limits`: `calls` a non-negative integer, a known period and key."""
    for limit in limits or []:
        calls = limit.get("calls") if isinstance(limit, dict) else None
        if not isinstance(calls, int) or calls < 0:
            raise RuleViolation("Each rate limit needs 'calls', a non-negative integer.")
        if limit.get("renewal_period", "minute") not in RATE_LIMIT_PERIODS:
            raise RuleViolation("rate limit renewal_period must be 'minute'.")
        if limit.get("key", "endpoint") not in RATE_LIMIT_KEYS:
            raise RuleViolation("rate limit key must be 'user' or 'endpoint'.")
