"""An endpoint's settings beside its config: email notifications and the telemetry config (both CAN_MANAGE;
written first, then shown, like every change)."""
from __future__ import annotations

from fastapi import APIRouter

from jupyter_serving.local.http.deps import BaseUrl, CallerDep, EngineDep, Manageable
from jupyter_serving.local.http.models import dump
from jupyter_serving.local.http.present import present
from jupyter_serving.local.http.settings_models import PatchNotifications, PatchTelemetryConfig

router = APIRouter(prefix="/api/2.0/serving-endpoints")


@router.patch("/{name}/notifications")
async def update_notifications(doc: Manageable, body: PatchNotifications, engine: EngineDep):
    """The SDK's `update_notifications`: answers `{name, email_notifications}`."""
    notifications = dump(body.email_notifications) if body.email_notifications is not None else None
    await engine.commit(doc, email_notifications=notifications)
    answer = {"name": doc["name"]}
    if notifications is not None:
        answer["email_notifications"] = notifications
    return answer


@router.patch("/{name}/telemetry-config")
async def patch_telemetry_config(doc: Manageable, caller: CallerDep, body: PatchTelemetryConfig,
                                 engine: EngineDep, url: BaseUrl):
    """The SDK's `patch_telemetry_config`: answers the endpoint (ServingEndpointDetailed)."""
    telemetry = dump(body.telemetry_config) if body.telemetry_config is not None else None
    return present(await engine.commit(doc, telemetry_config=telemetry), caller, url)
