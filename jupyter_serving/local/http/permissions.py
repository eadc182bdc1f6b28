"""The Permissions API of serving endpoints (addressed by endpoint id): levels, get, set, update."""
from __future__ import annotations

from fastapi import APIRouter

from jupyter_serving.local.http.deps import EngineDep, ManageableById, ViewableById
from jupyter_serving.local.http.models import Permissions, dump
from jupyter_serving.local.permissions import merge_acl, parse_acl, permission_levels, present_acl

router = APIRouter(prefix="/api/2.0/permissions/serving-endpoints")


@router.get("/{endpoint_id}/permissionLevels")
async def get_permission_levels(_doc: ViewableById):
    return {"permission_levels": permission_levels()}


@router.get("/{endpoint_id}")
async def get_permissions(doc: ViewableById, engine: EngineDep):
    return present_acl(doc, engine.admin_user)


@router.put("/{endpoint_id}")
async def set_permissions(doc: ManageableById, body: Permissions, engine: EngineDep):
    doc = await engine.set_acl(doc["name"], parse_acl(dump(body)))
    return present_acl(doc, engine.admin_user)


@router.patch("/{endpoint_id}")
async def update_permissions(doc: ManageableById, body: Permissions, engine: EngineDep):
    doc = await engine.set_acl(doc["name"], merge_acl(doc.get("acl", []), parse_acl(dump(body))))
    return present_acl(doc, engine.admin_user)
