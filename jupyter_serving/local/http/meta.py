"""About the backend: the workspace discovery document SDKs probe, and the backend's own settings."""
from __future__ import annotations

import time

from fastapi import APIRouter

from jupyter_serving.local.http.deps import CallerDep, EngineDep

router = APIRouter()


@router.get("/.well-known/databricks-config")
async def well_known(engine: EngineDep):  # unauthenticated: every databricks-sdk Config() probes it
    return {"workspace_id": engine.workspace_id, "cloud": engine.cloud.upper(), "oidc_endpoint": ""}


@router.get("/api/2.0/jupyter-serving/backend")
async def backend_info(_caller: CallerDep, engine: EngineDep):
    return {"cloud": engine.cloud, "gpus": engine.gpu_count, "scale_to_zero_idle_s": engine.idle_timeout_s,
            "mlflow_uri": engine.paths.mlflow_uri, "time": time.time(),
            "unreadable_endpoint_rows": engine.unreadable_rows}
