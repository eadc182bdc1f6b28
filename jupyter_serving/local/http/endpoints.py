"""Serving endpoints: create, list, get, delete, stop and start; tags, AI gateway, rate limits, OpenAPI."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter

from jupyter_serving.local.engine import Engine
from jupyter_serving.local.http.deps import BaseUrl, CallerDep, EngineDep, GatewayDep, Manageable, Viewable
from jupyter_serving.local.http.errors import ApiError
from jupyter_serving.local.http.models import AiGateway, CreateEndpoint, PatchTags, PutRateLimits, dump
from jupyter_serving.local.http.present import present
from jupyter_serving.local.openapi import endpoint_openapi
from jupyter_serving.local.permissions import level_of
from jupyter_serving.local.registry import read_model_metadata

router = APIRouter(prefix="/api/2.0/serving-endpoints")


@router.post("")
@router.post("/")  # mlflow's deployment client posts here
async def create_endpoint(caller: CallerDep, body: CreateEndpoint, engine: EngineDep, url: BaseUrl):
    doc = await engine.create(dump(body), caller.user)
    return present(doc, caller, url)


@router.get("")
@router.get("/")
async def list_endpoints(caller: CallerDep, engine: EngineDep, url: BaseUrl):
    return {"endpoints": [present(d, caller, url) for d in engine.endpoints.values() if level_of(d, caller)]}


@router.get("/{name}")
async def get_endpoint(doc: Viewable, caller: CallerDep, url: BaseUrl):
    return present(doc, caller, url)


@router.delete("/{name}")
async def delete_endpoint(doc: Manageable, engine: EngineDep, gateway: GatewayDep):
    await engine.delete(doc["name"])
    gateway.forget(doc["name"])
    return {}


@router.post("/{name}/config:stop")
async def stop_endpoint(doc: Manageable, caller: CallerDep, engine: EngineDep, url: BaseUrl):
    return present(await engine.stop(doc["name"]), caller, url)


@router.post("/{name}/config:start")
async def start_endpoint(doc: Manageable, caller: CallerDep, engine: EngineDep, url: BaseUrl):
    return present(await engine.start(doc["name"], caller.user), caller, url)


@router.patch("/{name}/tags")
async def patch_tags(doc: Manageable, body: PatchTags, engine: EngineDep):
    patch = dump(body)
    return {"tags": await engine.update_tags(doc["name"], patch.get("add_tags"), patch.get("delete_tags"))}


@router.put("/{name}/ai-gateway")
async def put_ai_gateway(doc: Manageable, body: AiGateway, engine: EngineDep):
    return await engine.set_ai_gateway(doc["name"], dump(body))


@router.put("/{name}/rate-limits")
async def put_rate_limits(doc: Manageable, body: PutRateLimits, engine: EngineDep):
    return {"rate_limits": await engine.set_rate_limits(doc["name"], dump(body).get("rate_limits"))}


@router.get("/{name}/openapi")
async def openapi(doc: Viewable, engine: EngineDep, url: BaseUrl):
    if doc["state"]["ready"] != "READY" or not doc.get("config"):
        raise ApiError("INVALID_STATE", f"Endpoint '{doc['name']}' is not READY; its schema is available once it is.")
    return endpoint_openapi(doc, url, await asyncio.to_thread(_models_metadata, engine, doc))


def _models_metadata(engine: Engine, doc: dict) -> dict:
    """Each served entity's model signature and example (reads the registry and model files: in a thread)."""
    return {e["name"]: read_model_metadata(engine.registry.resolve(e["entity_name"], e["entity_version"]))
            for e in doc["config"]["served_entities"] if e.get("external_model") is None}
