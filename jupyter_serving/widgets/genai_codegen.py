"""The code of GenAI endpoints for the create form's code view (pure): the `%serve create` words of an
external model, of provisioned throughput and of AI Gateway settings, and databricks-sdk code built
from the SDK's typed classes (`ExternalModel`, `PtEndpointCoreConfig`, `AiGatewayConfig`, ...).
"""
from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from jupyter_serving.core import ai_gateway as gw_rules
from jupyter_serving.core import genai, rules

# The SDK dataclass of each field's value (of each item, for a list), and the SDK enum of each enum field.
CLASSES = {
    "served_entities": "ServedEntityInput", "traffic_config": "TrafficConfig", "routes": "Route",
    "external_model": "ExternalModel", "openai_config": "OpenAiConfig",
    "usage_tracking_config": "AiGatewayUsageTrackingConfig", "inference_table_config": "AiGatewayInferenceTableConfig",
    "rate_limits": "AiGatewayRateLimit", "guardrails": "AiGatewayGuardrails", "input": "AiGatewayGuardrailParameters",
    "output": "AiGatewayGuardrailParameters", "pii": "AiGatewayGuardrailPiiBehavior", "fallback_config": "FallbackConfig",
}
ENUMS = {"provider": "ExternalModelProvider", "key": "AiGatewayRateLimitKey", "workload_type": "ServingModelWorkloadType",
         "renewal_period": "AiGatewayRateLimitRenewalPeriod", "behavior": "AiGatewayGuardrailPiiBehaviorBehavior"}


def _q(value: Any) -> str:
    return shlex.quote(str(value))


# -- %serve create ---------------------------------------------------------------------------------

def external_words(entity: Mapping) -> list[str]:
    """`--external PROVIDER:MODEL --api-base URL --secret SCOPE/KEY [--task T]` (never a key itself)."""
    ext = entity["external_model"]
    words = ["--external", _q(f"{ext.get('provider')}:{ext.get('name')}")]
    config = ext.get("openai_config") or {}
    if config.get("openai_api_base"):
        words += ["--api-base", _q(config["openai_api_base"])]
    found = rules.secret_reference(config.get("openai_api_key"))
    if found:
        words += ["--secret", _q(f"{found[0]}/{found[1]}")]
    short = {v: k for k, v in genai.TASKS.items()}.get(ext.get("task"), ext.get("task"))
    if short != "chat":
        words += ["--task", _q(short)]
    return words


def pt_words(entity: Mapping) -> list[str]:
    words = ["--pt-units", str(entity["provisioned_model_units"])]
    if entity.get("burst_scaling_enabled") is False:
        words.append("--no-burst-scaling")
    return words


def _guardrail_words(guardrails: Mapping) -> list[str]:
    sides = [s for s in ("input", "output") if guardrails.get(s)]
    if not sides:
        return []
    params = guardrails[sides[0]]
    words = []
    if params.get("invalid_keywords"):
        words += ["--guardrail-keywords", _q(",".join(params["invalid_keywords"]))]
    behavior = (params.get("pii") or {}).get("behavior")
    if behavior:
        words += ["--pii", behavior.lower()]
    same = len(sides) == 2 and guardrails["input"] == guardrails["output"]
    if not same:
        words += ["--guardrails-on", sides[0]]
    return words


def gateway_words(ai_gateway: Mapping | None) -> list[str]:
    """The AI Gateway flags of `%serve create` (and `%serve gateway`) for `ai_gateway`."""
    gw = dict(ai_gateway or {})
    words: list[str] = []
    if (gw.get("usage_tracking_config") or {}).get("enabled"):
        words.append("--usage-tracking")
    table = gw.get("inference_table_config") or {}
    if table.get("enabled"):
        words += ["--inference-table", _q(f"{table['catalog_name']}.{table['schema_name']}.{table['table_name_prefix']}")]
    for limit in gw.get("rate_limits") or []:
        words += ["--rate-limit", _q(gw_rules.limit_spec(limit))]
    words += _guardrail_words(gw.get("guardrails") or {})
    if (gw.get("fallback_config") or {}).get("enabled"):
        words.append("--fallback")
    return words


# -- databricks-sdk --------------------------------------------------------------------------------

def _enum(field: str, value: Any) -> str:
    return f"{ENUMS[field]}.{str(value).upper().replace('-', '_')}"


def constructor(cls: str, value: Mapping, indent: int, used: set[str], classes: Mapping[str, str]) -> list[str]:
    """The lines of `Cls(field=..., ...)` for `value`: nested dataclasses and enums by their SDK names
    (collected in `used`); the last line is the closing parenthesis, at `indent`."""
    used.add(cls)
    pad = " " * (indent + 4)
    lines = [f"{cls}("]
    for field, v in value.items():
        if v is None:
            continue
        if field in classes and isinstance(v, Mapping):
            sub = constructor(classes[field], v, indent + 4, used, classes)
            lines += [f"{pad}{field}={sub[0]}", *sub[1:-1], sub[-1] + ","]
        elif field in classes and isinstance(v, list):
            lines.append(f"{pad}{field}=[")
            for item in v:
                sub = constructor(classes[field], item, indent + 8, used, classes)
                lines += [f"{pad}    {sub[0]}", *sub[1:-1], sub[-1] + ","]
            lines.append(f"{pad}],")
        elif field in ENUMS:
            used.add(ENUMS[field])
            lines.append(f"{pad}{field}={_enum(field, v)},")
        else:
            lines.append(f"{pad}{field}={v!r},")
    lines.append(" " * indent + ")")
    return lines


def _imports(used: set[str]) -> list[str]:
    lines, line = ["from databricks.sdk.service.serving import ("], "   "
    for name in sorted(used):
        if len(line) + len(name) + 2 > 100:
            lines.append(line.rstrip())
            line = "   "
        line += f" {name},"
    return [*lines, line.rstrip(), ")"]


def typed_sdk_code(name: str, entities: Sequence[Mapping], routes: Mapping[str, int], ai_gateway: Mapping | None,
                   connect: list[str], local: bool) -> str:
    """databricks-sdk code creating the endpoint with the typed classes: `create_and_wait`, or
    `create_provisioned_throughput_endpoint_and_wait` for provisioned throughput; `ai_gateway` as an
    `AiGatewayConfig`."""
    pt = genai.is_pt_config({"served_entities": list(entities)})
    classes = {**CLASSES, "served_entities": "PtServedModel" if pt else "ServedEntityInput"}
    config = {**({} if pt else {"name": name}), "served_entities": [dict(e) for e in entities],
              "traffic_config": {"routes": [{"served_model_name": k, "traffic_percentage": v}
                                            for k, v in routes.items()]}}
    used: set[str] = set()
    call = "create_provisioned_throughput_endpoint_and_wait" if pt else "create_and_wait"
    body = [f"endpoint = w.serving_endpoints.{call}(", f"    name={name!r},"]
    cfg = constructor("PtEndpointCoreConfig" if pt else "EndpointCoreConfigInput", config, 4, used, classes)
    body += [f"    config={cfg[0]}", *cfg[1:-1], cfg[-1] + ","]
    if ai_gateway:
        gw = constructor("AiGatewayConfig", ai_gateway, 4, used, classes)
        body += [f"    ai_gateway={gw[0]}", *gw[1:-1], gw[-1] + ","]
    body += [")", "print(endpoint.name, endpoint.state)"]
    head = [] if local else ["from databricks.sdk import WorkspaceClient"]
    return "\n".join([*head, *_imports(used), *connect, "", *body])
