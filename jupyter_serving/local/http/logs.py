"""What an endpoint tells about itself: build logs, model server logs and Prometheus metrics."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from jupyter_serving.local.http.deps import EngineDep, GatewayDep, PathName, Viewable
from jupyter_serving.local.http.models import BuildLogsQuery
from jupyter_serving.local.supervisor import tail

router = APIRouter(prefix="/api/2.0/serving-endpoints")

SERVER_LOG_BYTES = 64_000
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/{name}/served-models/{entity}/build-logs")
async def build_logs(doc: Viewable, entity: PathName, query: Annotated[BuildLogsQuery, Query()], engine: EngineDep):
    text = engine.store.build_log(doc["id"], entity, query.config_version)
    if text is None:  # entities of a failed update keep their build logs after the config is gone
        engine.served_entity(doc, entity)
    return {"logs": text or ""}


@router.get("/{name}/served-models/{entity}/logs")
async def server_logs(doc: Viewable, entity: PathName, engine: EngineDep):
    engine.served_entity(doc, entity)
    return {"logs": tail(engine.log_path(doc, entity), SERVER_LOG_BYTES)}


@router.get("/{name}/metrics")
async def metrics(doc: Viewable, gateway: GatewayDep):
    return Response(gateway.export(doc["name"]), media_type=METRICS_TYPE)
