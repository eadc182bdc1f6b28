"""Provisioned-throughput endpoints: `POST .../pt` and `PUT .../pt/{name}/config` (the SDK's
`create_provisioned_throughput_endpoint` and `update_provisioned_throughput_endpoint_config`).

Locally a PT entity is served like any registered MLflow model (the engine's create and update paths);
it keeps `provisioned_model_units` and `burst_scaling_enabled`, and its concurrency and token throughput
follow from the units (`core.rules`, README.md "Provisioned throughput (local)")."""
from __future__ import annotations

from fastapi import APIRouter

from jupyter_serving.local.http.deps import BaseUrl, CallerDep, EngineDep, Manageable
from jupyter_serving.local.http.models import CreatePtEndpoint, UpdatePtConfig, dump
from jupyter_serving.local.http.present import present

router = APIRouter(prefix="/api/2.0/serving-endpoints/pt")


@router.post("")
async def create_pt_endpoint(caller: CallerDep, body: CreatePtEndpoint, engine: EngineDep, url: BaseUrl):
    return present(await engine.create(dump(body), caller.user), caller, url)


@router.put("/{name}/config")
async def update_pt_config(doc: Manageable, caller: CallerDep, body: UpdatePtConfig, engine: EngineDep,
                           url: BaseUrl):
    return present(await engine.update_config(doc["name"], dump(body)["config"], caller.user), caller, url)
