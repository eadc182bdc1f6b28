"""Endpoint permissions: the levels, who holds which on an endpoint, and access control lists.

The creator and the local admin hold CAN_MANAGE; an ACL entry grants a level to a user, a service
principal or the group `users` (everyone). Violations raise `RuleViolation` with Databricks' codes.

What a caller without permission learns (decided here, as Databricks answers):
- Endpoint names are workspace-unique, so a create with a taken name answers 409
  RESOURCE_ALREADY_EXISTS to everyone, with the generic message "Endpoint with name 'N' already
  exists." and nothing else: no creator, config, id or state.
- Any route on an existing endpoint the caller cannot act on (GET, PUT config, DELETE, logs, metrics,
  permissions, invocations) answers 403 PERMISSION_DENIED, whose message names only the caller and
  what they typed (the name, or the id for the Permissions API): never the creator, the endpoint's
  name when addressed by id, its config or its state. A missing endpoint answers 404
  RESOURCE_DOES_NOT_EXIST. That an endpoint of some name exists is thus not secret (as the create
  conflict shows anyway); everything about it is. The list omits endpoints the caller cannot view.
"""
from __future__ import annotations

from dataclasses import dataclass

from jupyter_serving.core.rules import INVALID_PARAMETER_VALUE, RuleViolation

PERMISSION_DENIED = "PERMISSION_DENIED"
LEVELS = {"CAN_VIEW": 1, "CAN_QUERY": 2, "CAN_MANAGE": 3}
LEVEL_DESCRIPTIONS = {
    "CAN_VIEW": "Can view the endpoint and its logs and metrics",
    "CAN_QUERY": "Can view and query the endpoint",
    "CAN_MANAGE": "Can update, stop, delete the endpoint and manage its permissions",
}
_LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
PRINCIPAL_KEYS = ("user_name", "group_name", "service_principal_name")


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the user its token belongs to."""

    user: str
    is_admin: bool


def level_of(doc: dict, caller: Caller) -> int:
    """The caller's permission level on an endpoint (0: none, so the endpoint is hidden from them)."""
    if caller.is_admin or doc.get("creator") == caller.user:
        return LEVELS["CAN_MANAGE"]
    best = 0
    for entry in doc.get("acl", []):
        principal = entry.get("user_name") or entry.get("service_principal_name")
        if principal == caller.user or entry.get("group_name") == "users":
            best = max(best, LEVELS.get(entry.get("permission_level"), 0))
    return best


def level_name(doc: dict, caller: Caller) -> str:
    """The caller's level as the API reports it (`permission_level`)."""
    return _LEVEL_NAMES.get(level_of(doc, caller), "CAN_VIEW")


def require(doc: dict, caller: Caller, level: str, target: str | None = None) -> None:
    """PERMISSION_DENIED unless the caller holds `level`; the message names only `target` (what the caller
    typed: `serving endpoint 'NAME'` by default)."""
    if level_of(doc, caller) < LEVELS[level]:
        target = target or f"serving endpoint '{doc['name']}'"
        raise RuleViolation(f"User {caller.user} does not have {level} permission on {target}.", PERMISSION_DENIED)


def require_admin(caller: Caller, action: str) -> None:
    if not caller.is_admin:
        raise RuleViolation(f"Only the local admin can {action}.", PERMISSION_DENIED)


def parse_acl(body: dict) -> list[dict]:
    """The entries of a permissions request (`access_control_list`), validated."""
    acl = []
    for entry in body.get("access_control_list") or []:
        principals = [k for k in PRINCIPAL_KEYS if entry.get(k)]
        if len(principals) != 1:
            raise RuleViolation("Each access control entry names exactly one of user_name, group_name, "
                                "service_principal_name.", INVALID_PARAMETER_VALUE)
        if entry.get("permission_level") not in LEVELS:
            raise RuleViolation(f"Permission level {entry.get('permission_level')!r} is invalid; use one of "
                                f"{', '.join(LEVELS)}.", INVALID_PARAMETER_VALUE)
        acl.append({principals[0]: entry[principals[0]], "permission_level": entry["permission_level"]})
    return acl


def merge_acl(acl: list[dict], updates: list[dict]) -> list[dict]:
    """`acl` with `updates` replacing the entries of the same principals (a PATCH)."""
    merged = {_principal(e): e for e in acl}
    for entry in updates:
        merged[_principal(entry)] = entry
    return list(merged.values())


def present_acl(doc: dict, admin_user: str) -> dict:
    """An endpoint's permissions as the Permissions API answers them."""
    entries = [{"user_name": doc["creator"], "all_permissions": [
        {"permission_level": "CAN_MANAGE", "inherited": False}]}]
    for entry in doc.get("acl", []):
        principal = {k: entry[k] for k in PRINCIPAL_KEYS if k in entry}
        entries.append({**principal, "all_permissions": [
            {"permission_level": entry["permission_level"], "inherited": False}]})
    if admin_user != doc["creator"]:
        entries.append({"user_name": admin_user, "all_permissions": [
            {"permission_level": "CAN_MANAGE", "inherited": True, "inherited_from_object": ["/serving-endpoints/"]}]})
    return {"object_id": f"/serving-endpoints/{doc['id']}", "object_type": "serving-endpoint",
            "access_control_list": entries}


def permission_levels() -> list[dict]:
    return [{"permission_level": k, "description": v} for k, v in LEVEL_DESCRIPTIONS.items()]


def _principal(entry: dict) -> tuple:
    for key in PRINCIPAL_KEYS:
        if key in entry:
            return key, entry[key]
    return ("", "")
