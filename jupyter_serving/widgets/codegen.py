"""The code a create form stands for: a `%serve create` line and databricks-sdk code. Pure.

Both re-create the endpoint without the form, so that a notebook built with the form can be
re-run top to bottom.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from jupyter_serving.core.rules import default_entity_name
from jupyter_serving.widgets import genai_codegen

# The SDK's ServingModelWorkloadType enum (databricks-sdk 0.156). Other types (GPU_MEDIUM_4, ...)
# cannot go through the typed API: the code posts a dict through api_client.do instead.
SDK_WORKLOAD_TYPES = frozenset({"CPU", "CPU_LARGE", "CPU_MEDIUM", "GPU_LARGE", "GPU_MEDIUM", "GPU_SMALL",
                                "GPU_XLARGE", "GPU_XLARGE_8", "MULTIGPU_MEDIUM"})


def _q(value: Any) -> str:
    return shlex.quote(str(value))


def _entity_words(e: Mapping) -> list[str]:
    words = ["--model", _q(e["entity_name"]), "--version", _q(e["entity_version"])]
    if e.get("name") and e["name"] != default_entity_name(e["entity_name"], e["entity_version"]):
        words += ["--entity-name", _q(e["name"])]
    if e.get("provisioned_model_units") is not None:
        return words + genai_codegen.pt_words(e)
    if e.get("workload_type") and e["workload_type"] != "CPU":
        words += ["--workload-type", _q(e["workload_type"])]
    if e.get("workload_size"):
        words += ["--workload-size", _q(e["workload_size"])]
    if e.get("min_provisioned_concurrency") is not None:
        words += ["--min-concurrency", str(int(e["min_provisioned_concurrency"]))]
    if e.get("max_provisioned_concurrency") is not None:
        words += ["--max-concurrency", str(int(e["max_provisioned_concurrency"]))]
    if e.get("scale_to_zero_enabled"):
        words.append("--scale-to-zero")
    return words


def magic_line(name: str, entities: Sequence[Mapping], traffic: Mapping[str, int] | None = None, *,
               ai_gateway: Mapping | None = None) -> str:
    """`%serve create NAME --model M --version V [entity options] ... [--traffic E=P ...]`, or
    `--external PROVIDER:MODEL ...`; then the AI Gateway flags."""
    words = ["%serve", "create", _q(name)]
    if entities and entities[0].get("external_model"):
        words += genai_codegen.external_words(entities[0])
    else:
        for e in entities:
            words += _entity_words(e)
        if traffic and len(entities) > 1:
            words += ["--traffic", *(_q(f"{k}={v}") for k, v in traffic.items())]
    return " ".join(words + genai_codegen.gateway_words(ai_gateway))


def _connect_lines(local: bool, data_dir: str | None, profile: str | None) -> list[str]:
    if local:
        arg = f"local=True, data_dir={data_dir!r}" if data_dir else "local=True"
        return ["from jupyter_serving import api",
                "",
                f"w = api.connect({arg}).workspace  # a databricks-sdk WorkspaceClient for the local backend"]
    if profile:
        return [f"w = WorkspaceClient(profile={profile!r})"]
    return ["w = WorkspaceClient()  # DATABRICKS_HOST + DATABRICKS_TOKEN, or ~/.databrickscfg"]


def _entity_kwargs(e: Mapping) -> list[str]:
    out = [f"entity_name={e['entity_name']!r}", f"entity_version={str(e['entity_version'])!r}"]
    if e.get("name"):
        out.append(f"name={e['name']!r}")
    out.append(f"workload_type=ServingModelWorkloadType.{e.get('workload_type') or 'CPU'}")
    if e.get("workload_size"):
        out.append(f"workload_size={e['workload_size']!r}")
    if e.get("min_provisioned_concurrency") is not None:
        out.append(f"min_provisioned_concurrency={int(e['min_provisioned_concurrency'])}")
    if e.get("max_provisioned_concurrency") is not None:
        out.append(f"max_provisioned_concurrency={int(e['max_provisioned_concurrency'])}")
    out.append(f"scale_to_zero_enabled={bool(e.get('scale_to_zero_enabled'))}")
    return out


def _default_name(e: Mapping) -> str:
    if e.get("external_model"):
        return re.sub(r"[.:]", "-", str(e["external_model"].get("name", "")).strip())
    return default_entity_name(e["entity_name"], e["entity_version"])


def sdk_code(name: str, entities: Sequence[Mapping], traffic: Mapping[str, int] | None = None, *,
             local: bool = False, data_dir: str | None = None, profile: str | None = None,
             ai_gateway: Mapping | None = None) -> str:
    """databricks-sdk code that creates the same endpoint and waits for it (20 minutes at most): typed
    classes for external models, provisioned throughput and AI Gateway settings too."""
    routes = dict(traffic or {})
    if not routes and len(entities) == 1:
        routes = {entities[0].get("name") or _default_name(entities[0]): 100}
    typed = all((e.get("workload_type") or "CPU") in SDK_WORKLOAD_TYPES for e in entities)
    genai = ai_gateway or any(e.get("external_model") or e.get("provisioned_model_units") is not None
                              for e in entities)
    if typed and genai:
        return genai_codegen.typed_sdk_code(name, entities, routes, ai_gateway,
                                            _connect_lines(local, data_dir, profile), local)
    lines: list[str] = []
    if typed:
        lines += ["from databricks.sdk import WorkspaceClient",
                  "from databricks.sdk.service.serving import (",
                  "    EndpointCoreConfigInput, Route, ServedEntityInput, ServingModelWorkloadType, TrafficConfig)"]
    else:
        lines += ["from databricks.sdk import WorkspaceClient"]
    connect = _connect_lines(local, data_dir, profile)
    if local:
        lines = [line for line in lines if line != "from databricks.sdk import WorkspaceClient"]
    lines += connect + [""]
    if typed:
        lines += ["endpoint = w.serving_endpoints.create_and_wait(",
                  f"    name={name!r},",
                  "    config=EndpointCoreConfigInput(",
                  f"        name={name!r},",
                  "        served_entities=["]
        for e in entities:
            lines.append("            ServedEntityInput(")
            lines += [f"                {kw}," for kw in _entity_kwargs(e)]
            lines.append("            ),")
        lines += ["        ],",
                  "        traffic_config=TrafficConfig(routes=["]
        lines += [f"            Route(served_model_name={k!r}, traffic_percentage={v})," for k, v in routes.items()]
        lines += ["        ]),", "    ),", ")", "print(endpoint.name, endpoint.state)"]
        return "\n".join(lines)
    # Workload types outside the SDK enum: send the JSON body as the REST API takes it.
    body_entities = []
    for e in entities:
        body_entities.append({k: e[k] for k in ("entity_name", "entity_version", "name", "workload_type",
                                                "workload_size", "min_provisioned_concurrency",
                                                "max_provisioned_concurrency", "scale_to_zero_enabled",
                                                "provisioned_model_units", "burst_scaling_enabled")
                              if e.get(k) is not None})
    body = {"name": name, "config": {"served_entities": body_entities, "traffic_config": {"routes": [
        {"served_model_name": k, "traffic_percentage": v} for k, v in routes.items()]}}}
    if ai_gateway:
        body["ai_gateway"] = dict(ai_gateway)
    import pprint

    lines += ["# Some workload types are missing from the SDK's enum: post the REST body directly.",
              f"body = {pprint.pformat(body, indent=1, width=100, sort_dicts=False)}",
              'w.api_client.do("POST", "/api/2.0/serving-endpoints", body=body)',
              f"endpoint = w.serving_endpoints.wait_get_serving_endpoint_not_updating({name!r})",
              "print(endpoint.name, endpoint.state)"]
    return "\n".join(lines)
