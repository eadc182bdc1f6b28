"""Everything around an endpoint's config: logs and build logs, the query schema and a request
template from it, permissions, tags."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from jupyter_serving.client.base import ClientBase
from jupyter_serving.client.checks import check_endpoint_name
from jupyter_serving.core.arguments import parse_permission_level, parse_principal
from jupyter_serving.core.errors import Hint, InvalidInputError, NotFoundError, ServingError
from jupyter_serving.core.log_lines import model_lines
from jupyter_serving.core.templates import request_template_from_openapi

PERMISSION_COLUMNS = ["principal", "type", "permission_level", "inherited"]


def _tail(text: str, tail: int | None) -> str:
    if not tail or tail <= 0:
        return text
    return "\n".join(text.splitlines()[-tail:])


def _principal(acl: Any) -> tuple[str, str]:
    if acl.user_name:
        return acl.user_name, "user"
    if acl.group_name:
        return acl.group_name, "group"
    if acl.service_principal_name:
        return acl.service_principal_name, "service_principal"
    return acl.display_name, "unknown"


def permissions_frame(perms: Any) -> pd.DataFrame:
    """The SDK's permissions answer as rows: principal, type, permission_level, inherited."""
    rows = []
    for acl in perms.access_control_list or []:
        principal, kind = _principal(acl)
        for p in acl.all_permissions or []:
            rows.append({"principal": principal, "type": kind,
                         "permission_level": p.permission_level.value if p.permission_level else None,
                         "inherited": bool(p.inherited)})
    return pd.DataFrame(rows, columns=PERMISSION_COLUMNS)


class AdminMixin(ClientBase):
    # -- logs ------------------------------------------------------------------------------------
    def _logs(self, name: str, entity: str | None, build: bool, tail: int | None, model_only: bool = False) -> str:
        status = self.get(name)  # type: ignore[attr-defined]
        if build and entity is not None:  # a failed update's entity keeps its build logs after it is gone
            names = [entity]
        elif entity is not None or len(status.entity_names) == 1:
            names = [self._pick_entity(status, entity)]  # type: ignore[attr-defined]
        else:
            names = status.entity_names
        kind = "build logs" if build else "logs"
        fn = self.workspace.serving_endpoints.build_logs if build else self.workspace.serving_endpoints.logs
        parts = []
        for ent in names:
            res = self._call(lambda ent=ent: fn(name=name, served_model_name=ent),
                             what=f"Reading {kind} of '{name}/{ent}'")
            text = res.logs or ""
            if model_only:
                text = model_lines(text)[0]
            text = _tail(text, tail)
            parts.append(text if len(names) == 1 else f"=== {ent} ===\n{text}")
        return "\n".join(parts)

    def logs(self, name: str, entity: str | None = None, *, tail: int | None = None,
             model_only: bool = False) -> str:
        """Model server logs of one served entity (all entities, with headers, if not named). With
        `model_only`, the serving stack's lines (uvicorn access and lifecycle, MLflow warnings) are
        left out."""
        return self._logs(name, entity, False, tail, model_only)

    def build_logs(self, name: str, entity: str | None = None, *, tail: int | None = None) -> str:
        """Container build logs of one served entity (all entities if not named)."""
        return self._logs(name, entity, True, tail)

    # -- schema ----------------------------------------------------------------------------------
    def openapi(self, name: str) -> dict:
        """The endpoint's query schema (OpenAPI 3.1), built from the model signature."""
        check_endpoint_name(name)
        res = self._call(lambda: self.workspace.serving_endpoints.get_open_api(name=name),
                         what=f"Reading the schema of '{name}'",
                         not_found_hint=Hint(python="List the endpoints with `client.names()`.",
                                             magic="List the endpoints with `%serve list`."),
                         hint="The schema needs a model logged with a signature and a READY endpoint.")
        raw = res.contents.read() if res.contents is not None else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise ServingError(f"The schema of '{name}' is not JSON", "Check the server version.") from None

    schema = openapi

    def request_template(self, name: str, entity: str | None = None) -> dict:
        """A request body to start from, built from the OpenAPI schema (its example if it has one)."""
        return request_template_from_openapi(self.openapi(name), entity)

    # -- permissions -----------------------------------------------------------------------------
    def _endpoint_id(self, name: str) -> str:
        status = self.get(name)  # type: ignore[attr-defined]
        if not status.id:
            raise ServingError(f"Endpoint '{name}' has no id", "The server must return `id` for permissions.")
        return status.id

    def permissions(self, name: str) -> pd.DataFrame:
        """Who may do what: principal, type, permission_level, inherited."""
        eid = self._endpoint_id(name)
        perms = self._call(lambda: self.workspace.serving_endpoints.get_permissions(serving_endpoint_id=eid),
                           what=f"Reading permissions of '{name}'")
        return permissions_frame(perms)

    def grant(self, name: str, principal: str, level: str) -> pd.DataFrame:
        """Grant `level` (CAN_MANAGE, CAN_QUERY, CAN_VIEW) to a user (e-mail), `group:NAME` or
        `sp:APPLICATION_ID`. Returns the resulting permissions."""
        from databricks.sdk.service.serving import ServingEndpointAccessControlRequest

        level = parse_permission_level(level)
        who = parse_principal(principal)
        eid = self._endpoint_id(name)
        acl = ServingEndpointAccessControlRequest.from_dict({**who, "permission_level": level})
        perms = self._call(lambda: self.workspace.serving_endpoints.update_permissions(
            serving_endpoint_id=eid, access_control_list=[acl]), what=f"Granting {level} on '{name}'")
        return permissions_frame(perms)

    # -- tags ------------------------------------------------------------------------------------
    def tags(self, name: str, add: Mapping[str, str] | None = None,
             remove: Iterable[str] | None = None) -> dict[str, str]:
        """The endpoint's tags after adding `add` and removing the keys in `remove`."""
        from databricks.sdk.service.serving import EndpointTag

        add = dict(add or {})
        remove = list(remove or [])
        status = self.get(name)  # type: ignore[attr-defined]
        if not add and not remove:
            return status.tags
        both = set(add) & set(remove)
        if both:
            raise InvalidInputError(f"Tag '{sorted(both)[0]}' is both set and removed", "Do one or the other.")
        missing = [k for k in remove if k not in status.tags]
        if missing:
            raise NotFoundError(f"Endpoint '{name}' has no tag '{missing[0]}' "
                                f"(tags: {', '.join(status.tags) or 'none'})", "Remove an existing tag key.")
        res = self._call(lambda: self.workspace.serving_endpoints.patch(
            name=name, add_tags=[EndpointTag(key=k, value=v) for k, v in add.items()] or None,
            delete_tags=remove or None), what=f"Changing tags of '{name}'")
        return {t.key: t.value for t in res.tags or []}
