"""The AI Gateway's records, read back: usage tracking and an endpoint's inference table (local extension).

On Databricks these are tables (`system.serving.endpoint_usage`, `{catalog}.{schema}.{prefix}_payload`)
read with SQL, under Unity Catalog grants. Locally they are read through two routes beside the
endpoint's own, with the endpoint's permissions standing in for the grants: the inference table holds
request and response bodies, so reading it takes CAN_MANAGE (on Databricks the table belongs to the
endpoint's creator); usage rows hold counts and identities only, and take CAN_VIEW.

    GET /api/2.0/serving-endpoints/{name}/usage?since_ms=&limit=            -> {"rows": [...]}
    GET /api/2.0/serving-endpoints/{name}/inference-table?since_ms=&limit=  -> {"rows": [...], "table": ...}

Rows come oldest first, from `since_ms` (epoch milliseconds) on; every query answered before the read
is in them (the policy's writer is flushed first).
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from jupyter_serving.local.aigateway import AiGatewayPolicy
from jupyter_serving.local.http.deps import Manageable, Viewable
from jupyter_serving.local.http.models import RecordsQuery

router = APIRouter(prefix="/api/2.0/serving-endpoints")


async def get_policy(request: Request) -> AiGatewayPolicy:
    return request.app.state.ai_policy


PolicyDep = Annotated[AiGatewayPolicy, Depends(get_policy)]
Records = Annotated[RecordsQuery, Query()]


@router.get("/{name}/usage")
async def usage(doc: Viewable, query: Records, policy: PolicyDep):
    return {"rows": await policy.usage(doc, query.since_ms, query.limit or 1000)}


@router.get("/{name}/inference-table")
async def inference_table(doc: Manageable, query: Records, policy: PolicyDep):
    return {"rows": await policy.payloads(doc, query.since_ms, query.limit or 1000), "table": policy.table_of(doc)}
