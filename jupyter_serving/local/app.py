"""The backend's ASGI app: Databricks Model Serving's control plane and data plane on loopback.

Paths, bodies and error codes follow reference/serving-api.md so that databricks-sdk's
`WorkspaceClient`, `mlflow.deployments.get_deploy_client("databricks")` and plain REST work unchanged.
The routes live in `jupyter_serving.local.http`; this module wires them to an engine and a gateway.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import ASGIApp

from jupyter_serving.datadir import Paths
from jupyter_serving.local.aigateway import AiGatewayPolicy
from jupyter_serving.local.engine import Engine
from jupyter_serving.local.gateway import Gateway
from jupyter_serving.local.http import (
    aigateway,
    config,
    endpoints,
    logs,
    meta,
    permissions,
    pt,
    secrets,
    settings,
    tokens,
)
from jupyter_serving.local.http.errors import install_error_handlers
from jupyter_serving.local.http.guard import bounded_bodies, contain_errors
from jupyter_serving.local.http.invocations import with_invocations

ROUTERS = (meta.router, endpoints.router, config.router, logs.router, permissions.router, tokens.router,
           secrets.router, aigateway.router, pt.router, settings.router)


def create_app(paths: Paths, cloud: str, idle_timeout_s: float, admin_user: str,
               on_ready: Callable[[], None] | None = None, on_stop: Callable[[], None] | None = None) -> ASGIApp:
    """The ASGI app. `on_ready` / `on_stop` run at the end of startup and the start of shutdown (uvicorn
    re-raises SIGTERM once it has shut down, so code after `serve()` would never run)."""
    engine = Engine(paths, cloud, idle_timeout_s, admin_user)
    ai_policy = AiGatewayPolicy(paths.ai_gateway_db)  # the gateway's AI Gateway: limits, guardrails, records
    gateway = Gateway(engine, ai_policy)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        await ai_policy.start()
        await engine.startup()
        if on_ready:
            on_ready()
        yield
        if on_stop:
            on_stop()
        await engine.shutdown()
        await ai_policy.close()  # after the engine: what its last queries settled is written

    app = FastAPI(title="jupyter-serving local backend", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.engine = engine
    app.state.gateway = gateway
    app.state.ai_policy = ai_policy
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return with_invocations(contain_errors(bounded_bodies(app)), engine, gateway)


__all__ = ["create_app"]
