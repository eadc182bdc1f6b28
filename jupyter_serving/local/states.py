"""Databricks' state vocabulary for endpoints and served entities, as the REST API reports it.

An endpoint's `state` has `ready` (READY / NOT_READY), `config_update` (NOT_UPDATING / IN_PROGRESS /
UPDATE_FAILED) and `suspend`; each served entity has `state.deployment` and `deployment_state_message`.
"""
from __future__ import annotations

import uuid

from jupyter_serving.core.rules import RuleViolation

READY, NOT_READY = "READY", "NOT_READY"
NOT_UPDATING, IN_PROGRESS, UPDATE_FAILED = "NOT_UPDATING", "IN_PROGRESS", "UPDATE_FAILED"
UPDATE_CANCELED = "UPDATE_CANCELED"  # an update cancelled by its owner (POST .../config:cancel)
CREATING, DEPLOYED, FAILED, ABORTED, RECOVERING = (
    "DEPLOYMENT_CREATING", "DEPLOYMENT_READY", "DEPLOYMENT_FAILED", "DEPLOYMENT_ABORTED", "DEPLOYMENT_RECOVERING",
)
SUSPENDED, NOT_SUSPENDED = "SUSPENDED", "NOT_SUSPENDED"


class StateError(RuleViolation):
    """A request that the endpoint's current state forbids (400 INVALID_STATE or 409 conflict)."""


REQUEST_INFO_TYPE = "type.googleapis.com/google.rpc.RequestInfo"


def missing_endpoint(name: str) -> RuleViolation:
    """Databricks' 404 for an endpoint that does not exist (databricks-sdk raises `NotFound`), with the
    `google.rpc.RequestInfo` detail its errors carry."""
    error = RuleViolation(f"Endpoint with name '{name}' does not exist.", "RESOURCE_DOES_NOT_EXIST")
    error.details = [{"@type": REQUEST_INFO_TYPE, "request_id": str(uuid.uuid4()), "serving_data": ""}]
    return error


def entity_state(deployment: str, message: str) -> dict:
    """A served entity's reported `state`."""
    return {"deployment": deployment, "deployment_state_message": message}


def entity_doc(doc: dict, entity_name: str, which: str) -> dict | None:
    """The served entity `entity_name` of the endpoint's `config` or `pending_config` (`which`)."""
    for entity in (doc.get(which) or {}).get("served_entities", []):
        if entity["name"] == entity_name:
            return entity
    return None
