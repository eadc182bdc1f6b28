"""The Secrets API (`/api/2.0/secrets/...`) over the local secret store, as databricks-sdk's
`WorkspaceClient().secrets` calls it: scopes (create, list, delete) and secrets (put, list, delete).

Values go in and never come out: `list` answers keys and their last update, and `get` is refused.
Writes are the local admin's; reading a scope (its key list, or a reference from an endpoint) is the
admin's and, for a scope created with `initial_manage_principal: "users"`, everyone's (see
`local.secret_store`). Every store call runs in a thread.
"""
from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from jupyter_serving.local.engine import now_ms
from jupyter_serving.local.http.deps import CallerDep, EngineDep
from jupyter_serving.local.http.errors import ApiError
from jupyter_serving.local.http.models import CreateSecretScope, ListSecretsQuery, PutSecret, SecretRef, SecretScopeRef
from jupyter_serving.local.permissions import Caller, require_admin
from jupyter_serving.local.secret_store import EVERYONE

router = APIRouter(prefix="/api/2.0/secrets")


async def secrets_admin(caller: CallerDep) -> Caller:
    """The caller, who must be the local admin (checked before the body is read)."""
    require_admin(caller, "change secrets and secret scopes")
    return caller


Admin = Annotated[Caller, Depends(secrets_admin)]


@router.post("/scopes/create")
async def create_scope(_admin: Admin, body: CreateSecretScope, engine: EngineDep):
    principal = body.initial_manage_principal or None
    if principal not in (None, EVERYONE):
        raise ApiError("INVALID_PARAMETER_VALUE", f"initial_manage_principal can only be '{EVERYONE}' (everyone may "
                                                  "then read the scope); leave it unset for an admin-only scope.")
    if (body.scope_backend_type or "DATABRICKS").upper() != "DATABRICKS" or body.backend_azure_keyvault:
        raise ApiError("INVALID_PARAMETER_VALUE", "Azure Key Vault-backed scopes are not available on the local "
                                                  "backend; create a DATABRICKS scope.")
    await asyncio.to_thread(engine.secrets.create_scope, body.scope, principal, now_ms())
    return {}


@router.get("/scopes/list")
async def list_scopes(_caller: CallerDep, engine: EngineDep):
    names = await asyncio.to_thread(engine.secrets.scopes)
    return {"scopes": [{"name": name, "backend_type": "DATABRICKS"} for name in names]}


@router.post("/scopes/delete")
async def delete_scope(_admin: Admin, body: SecretScopeRef, engine: EngineDep):
    await asyncio.to_thread(engine.secrets.delete_scope, body.scope)
    return {}


@router.post("/put")
async def put_secret(_admin: Admin, body: PutSecret, engine: EngineDep):
    if (body.string_value is None) == (body.bytes_value is None):
        raise ApiError("INVALID_PARAMETER_VALUE", "Give exactly one of string_value and bytes_value.")
    if body.string_value is not None:
        value, is_bytes = body.string_value.encode("utf-8", "surrogatepass"), False
    else:
        value, is_bytes = body.bytes_value, True
    await asyncio.to_thread(engine.secrets.put, body.scope, body.key, value, is_bytes, now_ms())
    return {}


@router.get("/list")
async def list_secrets(caller: CallerDep, query: Annotated[ListSecretsQuery, Query()], engine: EngineDep):
    store = engine.secrets
    if not await asyncio.to_thread(store.readable, query.scope, caller.is_admin):
        raise ApiError("PERMISSION_DENIED", f"User {caller.user} does not have READ permission on secret scope "
                                            f"'{query.scope}'.")
    keys = await asyncio.to_thread(store.keys, query.scope)
    return {"secrets": [{"key": key, "last_updated_timestamp": ts} for key, ts in keys]}


@router.post("/delete")
async def delete_secret(_admin: Admin, body: SecretRef, engine: EngineDep):
    await asyncio.to_thread(engine.secrets.delete, body.scope, body.key)
    return {}


@router.get("/get")
async def get_secret(_caller: CallerDep):
    raise ApiError("PERMISSION_DENIED", "The local backend never returns secret values; only the endpoints whose "
                                        "config references a secret use it.")
