"""Endpoint configuration rules, shared by the local backend, the Python API and the widgets.

Pure: no I/O. Every violation raises `RuleViolation` with the Databricks `error_code` the server
would answer and a message that says what is wrong and how to fix it.
"""
from __future__ import annotations

import copy
import math
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


# External models (served entity field `external_model`); what an `external_model` itself must hold is
# `core.external_models.validate_external_model`.
EXTERNAL_MODEL_CONCURRENCY = 256  # requests in flight per external entity (no model server to protect)
# What Databricks refuses beside external_model: the fields of a model server.
NOT_FOR_EXTERNAL = ("entity_name", "entity_version", "workload_size", "workload_type",
                    "min_provisioned_concurrency", "max_provisioned_concurrency", "environment_vars",
                    "provisioned_model_units")
# Secret scope and key names, and a `{{secrets/scope/key}}` reference to one secret.
SECRET_NAME_PATTERN = r"[A-Za-z0-9._-]{1,128}"
SECRET_NAME_RE = re.compile(SECRET_NAME_PATTERN)
SECRET_REFERENCE_RE = re.compile(r"\{\{\s*secrets/(" + SECRET_NAME_PATTERN + r")/(" + SECRET_NAME_PATTERN + r")\s*\}\}")
SECRET_REFERENCE_FORM = "{{secrets/<scope>/<key>}}"


def secret_reference(text: Any) -> tuple[str, str] | None:
    """(scope, key) of a `{{secrets/scope/key}}` reference, or None when `text` is not one."""
    match = SECRET_REFERENCE_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    return (match.group(1), match.group(2)) if match else None


def is_external(entity: Any) -> bool:
    return isinstance(entity, dict) and entity.get("external_model") is not None


def _normalize_external(entity: dict, index: int) -> None:
    """Validate an external-model entity in place: no model-server fields, a valid external_model."""
    label = f"Served entity #{index + 1}"
    if entity.get("entity_name") not in (None, "") or entity.get("entity_version") not in (None, ""):
        raise RuleViolation(f"{label} sets both entity_name and external_model; a served entity serves either a "
                            "registered model (entity_name, entity_version) or an external model.")
    for field in NOT_FOR_EXTERNAL:
        if entity.get(field) is not None:
            raise RuleViolation(f"{label}: {field} does not apply to an external model (its provider runs it); "
                                "remove it.")
    if entity.get("scale_to_zero_enabled"):
        raise RuleViolation(f"{label}: scale_to_zero_enabled does not apply to an external model; remove it.")
    from jupyter_serving.core.external_models import validate_external_model  # it imports RuleViolation from here

    validate_external_model(entity["external_model"], label)
    if not entity.get("name"):  # Databricks' default: the model's name with '.' and ':' as '-'
        entity["name"] = re.sub(r"[.:]", "-", entity["external_model"]["name"].strip())


def _validate_entity_kinds(entities: list[dict]) -> None:
    """An endpoint serves external models or registered models, not both; its external models share a task."""
    external = [e for e in entities if is_external(e)]
    if external and len(external) != len(entities):
        raise RuleViolation("The config mixes external models and registered models; an endpoint serves one "
                            "kind: put them on separate endpoints.")
    tasks = sorted({e["external_model"]["task"] for e in external})
    if len(tasks) > 1:
        raise RuleViolation(f"The external models of an endpoint must share one task; got {', '.join(tasks)}.")


def validate_config_change(current: dict | None, new: dict) -> None:
    """Databricks: an endpoint of external models cannot be updated to serve registered models, nor the reverse."""
    old = (current or {}).get("served_entities") or []
    if old and is_external(old[0]) != is_external(new["served_entities"][0]):
        kind = "external models" if is_external(old[0]) else "registered models"
        raise RuleViolation(f"This endpoint serves {kind}; a config update cannot switch it to the other kind. "
                            "Create a new endpoint instead.")


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


# Provisioned throughput (README.md, "Provisioned throughput (local)"). A served entity has either workload
# settings or `provisioned_model_units`, not both. Locally one model unit is PT_TOKENS_PER_UNIT_PER_S tokens
# per second (the gateway's token bucket: units × that, × PT_BURST_FACTOR with burst scaling, which is on
# by default), and a PT entity serves CONCURRENCY_STEP concurrent requests per PT_UNITS_PER_STEP units (at
# least CONCURRENCY_STEP). Units are any whole number from 1 to MAX_MODEL_UNITS (Databricks' model-specific
# increments are not modelled).
PT_TOKENS_PER_UNIT_PER_S = 100
PT_BURST_FACTOR = 2
PT_UNITS_PER_STEP = 100
MAX_MODEL_UNITS = 10_000
WORKLOAD_FIELDS = ("workload_size", "workload_type", "min_provisioned_concurrency", "max_provisioned_concurrency")


def is_provisioned(entity: Any) -> bool:
    return isinstance(entity, dict) and entity.get("provisioned_model_units") is not None


def pt_tokens_per_s(entity: dict) -> int:
    """The token throughput a (validated) PT entity is provisioned for, burst scaling included."""
    burst = PT_BURST_FACTOR if entity.get("burst_scaling_enabled", True) else 1
    return int(entity["provisioned_model_units"]) * PT_TOKENS_PER_UNIT_PER_S * burst


def _normalize_provisioned(entity: dict, label: str) -> None:
    mixed = [f for f in WORKLOAD_FIELDS if entity.get(f) is not None]
    mixed += ["scale_to_zero_enabled"] if entity.get("scale_to_zero_enabled") else []
    if mixed:
        raise RuleViolation(f"{label}: provisioned_model_units cannot be combined with {', '.join(mixed)}; a "
                            "served entity has either workload settings or provisioned_model_units, not both.")
    units = entity["provisioned_model_units"]
    if not isinstance(units, int) or isinstance(units, bool) or not 1 <= units <= MAX_MODEL_UNITS:
        raise RuleViolation(f"{label}: provisioned_model_units must be a whole number from 1 to "
                            f"{MAX_MODEL_UNITS}, got {units!r}.")
    if not isinstance(entity.setdefault("burst_scaling_enabled", True), bool):
        raise RuleViolation(f"{label}: burst_scaling_enabled must be true or false.")
    entity.setdefault("scale_to_zero_enabled", False)


def validate_auto_capture(config: dict) -> None:
    """Legacy inference tables (`auto_capture_config`) cannot be enabled any more, as on Databricks."""
    capture = config.get("auto_capture_config")
    if isinstance(capture, dict) and capture.get("enabled"):
        raise RuleViolation("Legacy inference tables (auto_capture_config) are deprecated and can no longer be "
                            "enabled; use AI Gateway inference tables instead: set "
                            "ai_gateway.inference_table_config (enabled, catalog_name, schema_name, "
                            "table_name_prefix), e.g. with PUT /api/2.0/serving-endpoints/{name}/ai-gateway.")


def entity_concurrency(entity: dict) -> tuple[int, int]:
    """(min, max) concurrent requests the served entity provides. Assumes a validated entity."""
    if is_external(entity):
        return 0, EXTERNAL_MODEL_CONCURRENCY
    if is_provisioned(entity):
        high = CONCURRENCY_STEP * max(1, math.ceil(int(entity["provisioned_model_units"]) / PT_UNITS_PER_STEP))
        return high, high
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
    if is_external(entity):
        _normalize_external(entity, index)
    elif not entity.get("entity_name"):
        raise RuleViolation(f"Served entity #{index + 1} has no entity_name: name the model to serve.")
    elif entity.get("entity_version") in (None, ""):
        raise RuleViolation(
            f"Served entity #{index + 1} ({entity['entity_name']}) has no entity_version: "
            "name the model version to serve."
        )
    else:
        entity["entity_version"] = str(entity["entity_version"])
    if not entity.get("name"):
        entity["name"] = default_entity_name(entity["entity_name"], entity["entity_version"])
    name = entity["name"]
    validate_entity_name(name)
    if name in seen:
        raise RuleViolation(f"Served entity name '{name}' is used twice; give each served entity a unique name.")
    seen.add(name)
    if is_external(entity):
        return
    label = f"Served entity '{name}'"
    if is_provisioned(entity):
        _normalize_provisioned(entity, label)
        return
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
    validate_auto_capture(config)
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
    _validate_entity_kinds(entities)
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


RATE_LIMIT_PERIODS = ("minute",)
RATE_LIMIT_KEYS = ("user", "endpoint", "user_group", "service_principal")
MAX_GROUP_RATE_LIMITS = 5  # Databricks: at most 5 user_group limits per endpoint


def _validate_rate_limit(limit: Any, label: str) -> tuple[str, str | None]:
    """One rate limit; returns its key and principal."""
    if not isinstance(limit, dict):
        raise RuleViolation(f"{label} must be a JSON object.")
    counts = [limit[k] for k in ("calls", "tokens") if limit.get(k) is not None]
    if not counts or any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts):
        raise RuleViolation(f"{label} needs 'calls' or 'tokens' (or both): non-negative integers, per minute.")
    if (limit.get("renewal_period") or "minute") not in RATE_LIMIT_PERIODS:
        raise RuleViolation(f"{label}: renewal_period must be 'minute'.")
    key, principal = limit.get("key") or "endpoint", limit.get("principal") or None
    if key not in RATE_LIMIT_KEYS:
        raise RuleViolation(f"{label}: key must be one of {', '.join(RATE_LIMIT_KEYS)}.")
    if key == "endpoint" and principal is not None:
        raise RuleViolation(f"{label}: an endpoint rate limit applies to every caller and names no principal; "
                            "remove principal, or use key user, user_group or service_principal.")
    if key == "user_group" and principal is None:
        raise RuleViolation(f"{label}: a user_group rate limit needs principal, the name of the group.")
    return key, principal


def validate_rate_limits(limits: Any) -> None:
    """Endpoint and AI-gateway `rate_limits` (the HTTP models type their fields; these are the rules): each
    limit counts `calls` and/or `tokens` per `minute`, for the endpoint, each user, a group (`principal`) or
    each service principal (a `principal` names one user or service principal); at most
    MAX_GROUP_RATE_LIMITS group limits, and no two limits for the same key and principal."""
    seen: dict[tuple, int] = {}
    for index, limit in enumerate(limits or []):
        key, principal = _validate_rate_limit(limit, f"Rate limit #{index + 1}")
        if (key, principal) in seen:
            who = f" and principal '{principal}'" if principal else ""
            raise RuleViolation(f"Rate limits #{seen[key, principal]} and #{index + 1} both apply to key {key}{who}; "
                                "merge them into one (a limit can set both calls and tokens).")
        seen[key, principal] = index + 1
    if sum(1 for key, _ in seen if key == "user_group") > MAX_GROUP_RATE_LIMITS:
        raise RuleViolation(f"At most {MAX_GROUP_RATE_LIMITS} rate limits can have key user_group.")


INFERENCE_TABLE_NAME_FIELDS = ("catalog_name", "schema_name", "table_name_prefix")


def validate_ai_gateway(ai_gateway: Any, current: Any = None) -> None:
    """An endpoint's `ai_gateway` (the HTTP models type its fields) against the rules: its rate limits,
    and (as on Databricks) an enabled inference table keeps its catalog, schema and prefix: disable it
    first to change them. `current` is the endpoint's `ai_gateway` before the change."""
    if not isinstance(ai_gateway, dict):
        return
    validate_rate_limits(ai_gateway.get("rate_limits"))
    old = (current or {}).get("inference_table_config") or {} if isinstance(current, dict) else {}
    new = ai_gateway.get("inference_table_config") or {}
    if old.get("enabled") and new.get("enabled"):
        changed = [f for f in INFERENCE_TABLE_NAME_FIELDS if new.get(f) != old.get(f)]
        if changed:
            raise RuleViolation(f"inference_table_config: the inference table is enabled; disable it (enabled: "
                                f"false) before changing its {', '.join(changed)}.")
