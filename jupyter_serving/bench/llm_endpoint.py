"""The endpoint side of an LLM benchmark: which served entity is provisioned throughput, why Apply
cannot run, applying a PT recommendation, and the options a notebook or the widget passes.

Apply goes through the SDK's `update_provisioned_throughput_endpoint_config`
(`PUT /api/2.0/serving-endpoints/pt/{name}/config`) on the client's workspace, then follows the
update with `client.wait` until the endpoint is READY again.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from jupyter_serving.bench.errors import BenchError
from jupyter_serving.core.errors import ServingError
from jupyter_serving.core.rules import is_provisioned


def pt_entities(status) -> list[dict]:
    """The endpoint's served entities that have provisioned_model_units."""
    return [e for e in status.entities if is_provisioned(e)]


def pt_entity(status, entity: str | None = None) -> dict | None:
    """The provisioned-throughput entity a recommendation applies to: `entity`, else the only one,
    else the one taking all the traffic; None when there is no such single entity."""
    entities = pt_entities(status)
    if entity is not None:
        return next((e for e in entities if e.get("name") == entity), None)
    if len(entities) == 1:
        return entities[0]
    routed = [e for e in entities if status.traffic.get(e.get("name"))]
    return routed[0] if len(routed) == 1 else None


def not_pt_reason(status, name: str, entity: str | None = None) -> str | None:
    """Why Apply cannot resize this endpoint's provisioned throughput (None: it can)."""
    if not pt_entities(status):
        return (f"'{name}' is not a provisioned-throughput endpoint (no served entity has provisioned_model_units): "
                "Apply sets model units. Create one with create_provisioned_throughput_endpoint, or size a "
                "classic endpoint with the classic benchmark.")
    if pt_entity(status, entity) is None:
        return (f"Name the provisioned-throughput entity of '{name}' to resize (one of "
                f"{', '.join(str(e.get('name')) for e in pt_entities(status))}).")
    return None


def current_units(status, entity: str | None = None) -> int | None:
    found = pt_entity(status, entity)
    return int(found["provisioned_model_units"]) if found is not None else None


def _pt_config(status, target: dict, units: int):
    from databricks.sdk.service.serving import PtEndpointCoreConfig, PtServedModel, TrafficConfig

    served = [PtServedModel(entity_name=e["entity_name"], entity_version=e.get("entity_version"),
                            provisioned_model_units=units if e.get("name") == target.get("name")
                            else int(e["provisioned_model_units"]),
                            burst_scaling_enabled=e.get("burst_scaling_enabled"), name=e.get("name"))
              for e in pt_entities(status)]
    traffic = status.config.get("traffic_config")
    return PtEndpointCoreConfig(served_entities=served,
                                traffic_config=TrafficConfig.from_dict(traffic) if traffic else None)


def apply_pt(client, name: str, recommendation, *, entity: str | None = None, wait: bool = True,
             timeout: float = 1200.0, on_progress: Callable | None = None):
    """Set the PT entity's provisioned_model_units to the recommendation's, keeping the rest of the
    config (other entities, traffic, burst scaling); with `wait`, until READY. Returns the status."""
    status = client.get(name)
    reason = not_pt_reason(status, name, entity)
    if reason is not None:
        raise BenchError(reason, "")
    if status.is_updating:
        raise BenchError(f"Endpoint '{name}' is being updated", "Wait for the update to finish, then apply.")
    config = _pt_config(status, pt_entity(status, entity), int(recommendation.units))
    from databricks.sdk.errors import DatabricksError

    try:
        client.workspace.serving_endpoints.update_provisioned_throughput_endpoint_config(name=name, config=config)
    except DatabricksError as err:
        raise ServingError(f"Updating the provisioned throughput of '{name}' failed: {err}",
                           f"See `%serve status {name}`.") from None
    if not wait:
        return client.get(name)
    status = client.wait(name, timeout=timeout, on_progress=on_progress)
    if not status.is_ready:
        raise ServingError(f"Endpoint '{name}' settled as {status.state} after the update", f"See `%serve status {name}`.")
    return status


def resolve_custom_inputs(value: Any, namespace: Mapping[str, Any] | None = None) -> dict | None:
    """`custom_inputs` for every request: a dict, JSON text, or `$var` naming a dict in `namespace`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("$"):
            if namespace is None or text[1:] not in namespace:
                raise BenchError(f"No variable named '{text[1:]}' for --custom-inputs", "Define it, or give JSON.")
            value = namespace[text[1:]]
        else:
            try:
                value = json.loads(text)
            except ValueError as err:
                raise BenchError(f"--custom-inputs is not valid JSON ({err})",
                                 'Give a JSON object, e.g. {"ttft_ms": 200}.') from None
    if not isinstance(value, dict):
        raise BenchError(f"custom_inputs must be a JSON object, got {type(value).__name__}", 'e.g. {"ttft_ms": 200}')
    return value


def whole_number(value: Any, what: str, low: int = 1, high: int = 1_000_000) -> int | None:
    """`value` as a whole number within [low, high]; None for None."""
    if value is None:
        return None
    wrong = BenchError(f"{what} must be a whole number from {low} to {high}, got {value!r}", "")
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise wrong
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise wrong from None
    if not low <= number <= high:
        raise wrong
    return number


__all__ = ["apply_pt", "current_units", "not_pt_reason", "pt_entities", "pt_entity", "resolve_custom_inputs",
           "whole_number"]
