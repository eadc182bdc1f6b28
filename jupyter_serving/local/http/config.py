"""Updating an endpoint's config (`PUT .../{name}/config`): deploys the new config beside the serving one;
`POST .../{name}/config:cancel` cancels that (the Serving UI's "Cancel update"; no public Databricks API)."""
from __future__ import annotations

from fastapi import APIRouter

from jupyter_serving.local.http.deps import BaseUrl, CallerDep, EngineDep, Manageable
from jupyter_serving.local.http.models import UpdateConfig, dump
from jupyter_serving.local.http.present import present

router = APIRouter(prefix="/api/2.0/serving-endpoints")


@router.put("/{name}/config")
async def update_config(doc: Manageable, caller: CallerDep, request: UpdateConfig, engine: EngineDep,
                        url: BaseUrl):
    body = dump(request)
    if body.get("config") is not None and "served_entities" not in body and "served_models" not in body:
        body = body["config"]  # tolerate the nested form some callers send
    return present(await engine.update_config(doc["name"], body, caller.user), caller, url)


@router.post("/{name}/config:cancel")
async def cancel_update(doc: Manageable, caller: CallerDep, engine: EngineDep, url: BaseUrl):
    """Cancel the update in progress: the serving config keeps serving; 400 INVALID_STATE without one."""
    return present(await engine.cancel_update(doc["name"]), caller, url)
