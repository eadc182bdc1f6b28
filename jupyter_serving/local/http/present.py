"""Endpoint documents as the REST API answers them: no internal fields, `served_models` beside
`served_entities`, the caller's `permission_level` and the `endpoint_url`."""
from __future__ import annotations

import copy

from jupyter_serving.local.permissions import Caller, level_name


def present_config(config: dict | None) -> dict | None:
    if config is None:
        return None
    out = copy.deepcopy(config)
    out["served_models"] = [
        {**{k: v for k, v in e.items() if k not in ("entity_name", "entity_version")},
         "model_name": e["entity_name"], "model_version": e["entity_version"]}
        for e in out["served_entities"]
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
    out["endpoint_url"] = f"{base_url}/serving-endpoints/{doc['name']}/invocations"
    return out
