"""FastAPI dependencies: the caller (from the bearer token), the engine and gateway, and
the endpoint a route acts on, looked up by name or id and checked against a permission level.

All are `async def` so that FastAPI runs them on the event loop rather than in its thread pool.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from jupyter_serving.local.engine import Engine
from jupyter_serving.local.gateway import Gateway
from jupyter_serving.local.http.errors import ApiError
from jupyter_serving.local.http.models import MAX_NAME
from jupyter_serving.local.permissions import Caller, require


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


EngineDep = Annotated[Engine, Depends(get_engine)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def authenticate(engine: Engine, authorization: str) -> Caller:
    """The caller whose token an `Authorization` header carries."""
    if not authorization.lower().startswith("bearer "):
        raise ApiError("UNAUTHENTICATED", "Missing credentials: send 'Authorization: Bearer <token>' "
                                          "(jupyter-serving local env prints the token).")
    found = engine.store.user_for_token(authorization[7:].strip())
    if found is None:
        raise ApiError("PERMISSION_DENIED", "Invalid access token.")
    return Caller(*found)


async def current_caller(request: Request, engine: EngineDep) -> Caller:
    return authenticate(engine, request.headers.get("authorization", ""))


CallerDep = Annotated[Caller, Depends(current_caller)]
# `{name}` and `{endpoint_id}` in paths: bounded like the names in bodies (see models.py).
PathName = Annotated[str, Path(max_length=MAX_NAME)]


def endpoint_named(engine: Engine, name: str, caller: Caller, level: str) -> dict:
    """The endpoint `name` if the caller holds `level` on it (403 naming only `name` otherwise, see
    `permissions`)."""
    doc = engine.get(name)
    require(doc, caller, level, f"serving endpoint '{name}'")
    return doc


def endpoint_for(level: str) -> Callable[..., Awaitable[dict]]:
    """A dependency: the endpoint of the path's `{name}`, on which the caller holds `level`."""
    async def dependency(name: PathName, caller: CallerDep, engine: EngineDep) -> dict:
        return endpoint_named(engine, name, caller, level)

    return dependency


def endpoint_by_id(level: str) -> Callable[..., Awaitable[dict]]:
    """A dependency: the endpoint of the path's `{endpoint_id}`, on which the caller holds `level`."""
    async def dependency(endpoint_id: PathName, caller: CallerDep, engine: EngineDep) -> dict:
        doc = engine.by_id(endpoint_id)
        if doc is None:
            raise ApiError("RESOURCE_DOES_NOT_EXIST", f"Serving endpoint with id '{endpoint_id}' does not exist.")
        require(doc, caller, level, f"serving endpoint with id '{endpoint_id}'")
        return doc

    return dependency


Viewable = Annotated[dict, Depends(endpoint_for("CAN_VIEW"))]
Manageable = Annotated[dict, Depends(endpoint_for("CAN_MANAGE"))]
ViewableById = Annotated[dict, Depends(endpoint_by_id("CAN_VIEW"))]
ManageableById = Annotated[dict, Depends(endpoint_by_id("CAN_MANAGE"))]


async def base_url(request: Request) -> str:
    """The URL the caller reached the backend at, without a trailing slash."""
    return str(request.base_url).rstrip("/")


BaseUrl = Annotated[str, Depends(base_url)]
