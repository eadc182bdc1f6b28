"""Access tokens on behalf of other users, so that several users (and their ACLs) can be simulated."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from jupyter_serving.local.http.deps import CallerDep, EngineDep
from jupyter_serving.local.http.errors import ApiError
from jupyter_serving.local.http.models import TokenRequest
from jupyter_serving.local.permissions import Caller, require_admin

router = APIRouter(prefix="/api/2.0/token-management")


async def token_admin(caller: CallerDep) -> Caller:
    """The caller, who must be the local admin (checked before the body is read)."""
    require_admin(caller, "create tokens for other users")
    return caller


@router.post("/on-behalf-of/tokens")
async def create_token(caller: Annotated[Caller, Depends(token_admin)], body: TokenRequest, engine: EngineDep):
    user = body.application_id or body.user_name
    if not user:
        raise ApiError("INVALID_PARAMETER_VALUE", "Name the user: application_id (or user_name).")
    comment = body.comment or ""
    token = await engine.issue_token(user, comment)
    return {"token_value": token, "token_info": {"token_id": token[-8:], "created_by_username": caller.user,
                                                  "owner_id": user, "comment": comment}}
