"""Endpoint documents as the REST API answers them: no internal fields, `served_models` beside
`served_entities`, the caller's `permission_level`, and for a route-optimized endpoint its `endpoint_url`
and `data_plane_info` (as Databricks gives them only for those).

`data_plane_info.query_info` is what databricks-sdk's `serving_endpoints_data_plane.query` reads: the URL
to query and the `authorization_details` it would exchange a control-plane OAuth token for (at
`/oidc/v1/token`). With a personal access token that SDK path cannot run (the SDK asks the PAT
credentials for an OAuth token, which they refuse, before any request), so the backend has no token
exchange; the URL takes the caller's own token, like `/serving-endpoints/{name}/invocations`."""
from __future__ import annotations

import copy
import json

from jupyter_serving.local.external import redact
from jupyter_serving.local.permissions import Caller, level_name


def present_config(config: dict | None) -> dict | None:
    """A config as the API shows it; an external model without its key (only a secret reference shows)."""
    if config is None:
        return None
    out = copy.deepcopy(config)
    for entity in out["served_entities"]:
        if entity.get("external_model") is not None:
            entity["external_model"] = redact(entity["external_model"])
    out["served_models"] = [  # the deprecated field: registered models only (Databricks' ServedModelOutput)
        {**{k: v for k, v in e.items() if k not in ("entity_name", "entity_version")},
         "model_name": e["entity_name"], "model_version": e["entity_version"]}
        for e in out["served_entities"] if e.get("external_model") is None
    ]
    return out


def present(doc: dict, caller: Caller, base_url: str) -> dict:
    out = {k: v for k, v in doc.items() if not k.startswith("_") and k != "acl" and v is not None}
    out["config"] = present_config(doc.get("config"))
    out["pending_config"] = present_config(doc.get("pending_config"))
    for key in ("config", "pending_config"):
        if out[key] is None:
            del out[key]
    out["permission_level"] = level_name(doc, caller)
    if doc.get("route_optimized"):
        url = f"{base_url}/serving-endpoints/{doc['name']}/invocations"
        out["endpoint_url"] = url
        out["data_plane_info"] = {"query_info": {"endpoint_url": url, "authorization_details": json.dumps([{
            "type": "workspace_permission", "object_type": "serving-endpoints",
            "object_path": f"/serving-endpoints/{doc['id']}", "actions": ["query_inference_endpoint"]}])}}
    return out
