"""What databricks-sdk's typed methods can express, and what must go through `api_client.do`.

The typed dataclasses drop what they do not know: workload types missing from the SDK enum
(GPU_MEDIUM_4, ...), fields newer than the SDK. A request goes through the typed method only when
its dataclass round-trips it unchanged; otherwise the caller sends the dict as it is.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = ["entity_input_fields", "typed_ai_gateway", "typed_expressible", "typed_create", "typed_config",
           "typed_pt_config", "typed_pt_create"]

_CREATE_KEYS = {"name", "config", "tags", "route_optimized", "description", "ai_gateway"}
_PT_CREATE_KEYS = {"name", "config", "tags", "ai_gateway"}
_CONFIG_KEYS = {"served_entities", "traffic_config"}


def entity_input_fields() -> frozenset[str]:
    """The fields of a served entity that PUT /config accepts (the SDK's `ServedEntityInput`)."""
    from databricks.sdk.service.serving import ServedEntityInput

    return frozenset(f.name for f in dataclasses.fields(ServedEntityInput))


def typed_expressible(cls: Any, value: dict) -> bool:
    """True when the SDK dataclass round-trips `value` without losing anything."""
    try:
        return cls.from_dict(value).as_dict() == json.loads(json.dumps(value))
    except Exception:  # noqa: BLE001 - anything unusual goes through api_client.do
        return False


def typed_create(request: dict) -> dict | None:
    """Keyword arguments for `serving_endpoints.create`, or None when the SDK cannot express `request`."""
    from databricks.sdk.service.serving import AiGatewayConfig, EndpointCoreConfigInput, EndpointTag

    if not set(request) <= _CREATE_KEYS or not typed_expressible(EndpointCoreConfigInput, request["config"]):
        return None
    if request.get("ai_gateway") is not None and not typed_expressible(AiGatewayConfig, request["ai_gateway"]):
        return None
    return {
        "name": request["name"],
        "config": EndpointCoreConfigInput.from_dict(request["config"]),
        "tags": [EndpointTag.from_dict(t) for t in request["tags"]] if "tags" in request else None,
        "route_optimized": request.get("route_optimized"),
        "description": request.get("description"),
        "ai_gateway": AiGatewayConfig.from_dict(request["ai_gateway"]) if request.get("ai_gateway") else None,
    }


def typed_pt_config(core: dict):
    """The SDK's `PtEndpointCoreConfig` for a provisioned-throughput core config, or None when it cannot
    express it (workload fields beside the units, fields newer than the SDK)."""
    from databricks.sdk.service.serving import PtEndpointCoreConfig

    return PtEndpointCoreConfig.from_dict(core) if typed_expressible(PtEndpointCoreConfig, core) else None


def typed_pt_create(request: dict) -> dict | None:
    """Keyword arguments for `serving_endpoints.create_provisioned_throughput_endpoint`, or None when the
    SDK (or that API: no description, no route optimization) cannot express `request`."""
    from databricks.sdk.service.serving import AiGatewayConfig, EndpointTag

    config = typed_pt_config(request["config"]) if set(request) <= _PT_CREATE_KEYS else None
    if config is None or (request.get("ai_gateway") is not None
                          and not typed_expressible(AiGatewayConfig, request["ai_gateway"])):
        return None
    return {
        "name": request["name"],
        "config": config,
        "tags": [EndpointTag.from_dict(t) for t in request["tags"]] if "tags" in request else None,
        "ai_gateway": AiGatewayConfig.from_dict(request["ai_gateway"]) if request.get("ai_gateway") else None,
    }


def typed_ai_gateway(ai_gateway: dict) -> dict | None:
    """Keyword arguments (but the name) for `serving_endpoints.put_ai_gateway`, or None when the SDK cannot
    express the settings."""
    from databricks.sdk.service.serving import AiGatewayConfig

    if not typed_expressible(AiGatewayConfig, ai_gateway):
        return None
    typed = AiGatewayConfig.from_dict(ai_gateway)
    return {f.name: getattr(typed, f.name) or None for f in dataclasses.fields(typed)}  # [] (none) is left out


def typed_config(core: dict) -> dict | None:
    """Keyword arguments (but the name) for `serving_endpoints.update_config`, or None when the SDK
    cannot express the core config."""
    from databricks.sdk.service.serving import ServedEntityInput, TrafficConfig

    entities = core.get("served_entities") or []
    typed = set(core) <= _CONFIG_KEYS and all(typed_expressible(ServedEntityInput, e) for e in entities) and (
        "traffic_config" not in core or typed_expressible(TrafficConfig, core["traffic_config"]))
    if not typed:
        return None
    return {
        "served_entities": [ServedEntityInput.from_dict(e) for e in entities],
        "traffic_config": TrafficConfig.from_dict(core["traffic_config"]) if "traffic_config" in core else None,
    }
