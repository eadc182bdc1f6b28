"""Reading endpoints and the lifecycle calls that need no config: get, exists, list, names, stop,
start, delete; and the guards the changing calls share (not updating, not stopped, which entity)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from jupyter_serving.client.base import DEFAULT_WAIT_TIMEOUT, ClientBase, ProgressCallback, wait_hint
from jupyter_serving.client.checks import check_endpoint_name
from jupyter_serving.core.errors import ConflictError, Hint, InvalidInputError, NotFoundError, ServingError
from jupyter_serving.core.listing import EndpointsFrame
from jupyter_serving.core.status import EndpointStatus, traffic_of

# How many endpoints a detailed list reads one by one (the list API leaves their traffic out).
MAX_LIST_DETAILS = 200
LIST_COLUMNS = ["name", "state", "entities", "traffic", "creator", "updated"]


def _list_row(raw: dict) -> dict:
    st = EndpointStatus(raw)
    updated = raw.get("last_updated_timestamp")
    return {
        "name": st.name,
        "state": st.state,  # the Serving UI's words: "Ready", "Not ready (Updating)", ...
        # while an endpoint is being created it has only a pending config
        "entities": st.entities_text(st.entities or st.pending_entities),
        "traffic": st.traffic_text(st.traffic or traffic_of(st.pending_config)),
        "creator": st.creator,
        "updated": pd.to_datetime(updated, unit="ms", utc=True) if updated else pd.NaT,
    }


class EndpointsMixin(ClientBase):
    # -- reading ---------------------------------------------------------------------------------
    def get(self, name: str) -> EndpointStatus:
        """The endpoint's current state and config."""
        check_endpoint_name(name)
        raw = self._endpoint_call(name, lambda: self._api.do("GET", f"/api/2.0/serving-endpoints/{name}",
                                                             headers=self._headers()),
                                  what=f"Reading endpoint '{name}'")
        return EndpointStatus(raw)

    status = get

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except NotFoundError:
            return False

    def list_raw(self, *, details: bool = False, max_details: int = MAX_LIST_DETAILS) -> list[dict]:
        """Every endpoint as the list API returns it (one request). With `details`, the first
        `max_details` endpoints whose summary lacks traffic or state are read in full, in parallel;
        endpoints deleted meanwhile are left out."""
        res = self._do("GET", "/api/2.0/serving-endpoints", what="Listing endpoints")
        raw = [e for e in (res or {}).get("endpoints") or [] if e.get("name")]
        if not details:
            return raw

        def needs_detail(e: dict) -> bool:
            return "traffic_config" not in (e.get("config") or {}) or "state" not in e

        def detail(e: dict) -> dict | None:
            try:
                return self.get(e["name"]).raw
            except NotFoundError:  # deleted meanwhile
                return None
            except ServingError:
                return e

        todo = [i for i, e in enumerate(raw) if needs_detail(e)][:max_details]
        if todo:
            with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
                for i, doc in zip(todo, pool.map(detail, [raw[i] for i in todo])):
                    raw[i] = doc
        return [e for e in raw if e is not None]

    def names(self) -> list[str]:
        """Endpoint names, sorted (what completion offers)."""
        return sorted(e["name"] for e in self.list_raw())

    def list(self, *, details: bool = True) -> EndpointsFrame:
        """All endpoints: name, state ("Ready", "Not ready (Updating)", ...), entities, traffic,
        creator, updated.

        The list API summarizes configs without traffic; with `details` each endpoint is read
        (in parallel) to fill the traffic column.
        """
        frame = pd.DataFrame([_list_row(e) for e in self.list_raw(details=details)], columns=LIST_COLUMNS)
        return EndpointsFrame(frame.sort_values("name", ignore_index=True) if len(frame) else frame)

    # -- guards ----------------------------------------------------------------------------------
    def _not_updating(self, status: EndpointStatus, doing: str) -> None:
        if status.is_updating:
            version = (status.pending_config or {}).get("config_version")
            raise ConflictError(
                f"Endpoint '{status.name}' is already updating" + (f" (config v{version})" if version else "")
                + f"; cannot {doing} now",
                wait_hint("Wait for the update to finish ({how}) and try again.", status.name),
                error_code="RESOURCE_CONFLICT")

    def _not_stopped(self, status: EndpointStatus, done: str) -> None:
        if status.is_stopped:
            raise InvalidInputError(f"Endpoint '{status.name}' is stopped and cannot be {done}", Hint(
                python=f"Start it first with `client.start('{status.name}')`.",
                magic=f"Start it first with `%serve start {status.name}`."), error_code="INVALID_STATE")

    def _pick_entity(self, status: EndpointStatus, entity: str | None) -> str:
        names = status.entity_names
        if entity is None:
            if len(names) == 1:
                return names[0]
            raise InvalidInputError(f"Endpoint '{status.name}' serves several entities ({', '.join(names)})",
                                    Hint(python="Name one with entity='E'.", magic="Name one with --entity E."))
        if entity not in names:
            raise NotFoundError(f"Endpoint '{status.name}' has no served entity '{entity}' "
                                f"(served entities: {', '.join(names) or 'none'})", "Use one of those names.")
        return entity

    # -- stop / start / delete -------------------------------------------------------------------
    def _settle(self, name: str, wait: bool, **wait_args: Any) -> EndpointStatus:
        """The endpoint after a change: at once, or once `wait` (see WaitingMixin.wait) returns."""
        if not wait:
            return self.get(name)
        return self.wait(name, **wait_args)  # type: ignore[attr-defined]

    def stop(self, name: str, *, wait: bool = True, timeout: float = 300.0,
             on_progress: ProgressCallback | None = None) -> EndpointStatus:
        """Stop the endpoint (POST .../config:stop, not in the SDK). A stopped endpoint refuses
        queries until started. Stopping a stopped endpoint does nothing."""
        status = self.get(name)
        if status.is_stopped:
            return status
        self._not_updating(status, "stop it")
        self._do("POST", f"/api/2.0/serving-endpoints/{name}/config:stop", body={},
                 what=f"Stopping endpoint '{name}'")
        return self._settle(name, wait, timeout=timeout, on_progress=on_progress,
                            until=lambda s: s.is_stopped and s.is_settled, raise_on_failure=False)

    def start(self, name: str, *, wait: bool = True, timeout: float = DEFAULT_WAIT_TIMEOUT,
              on_progress: ProgressCallback | None = None) -> EndpointStatus:
        """Start a stopped endpoint (POST .../config:start: a new config version with the same
        properties). Starting a running endpoint does nothing."""
        status = self.get(name)
        if not status.is_stopped:
            return status
        self._do("POST", f"/api/2.0/serving-endpoints/{name}/config:start", body={},
                 what=f"Starting endpoint '{name}'")
        return self._settle(name, wait, timeout=timeout, on_progress=on_progress,
                            until=lambda s: not s.is_stopped and s.is_settled)

    def cancel_update(self, name: str) -> EndpointStatus:
        """Cancel the config update in progress (the Serving UI's "Cancel update"): the new config's model
        servers stop, the serving config keeps serving, and the endpoint shows UPDATE_CANCELED (a cancelled
        create shows the cancelled config, not ready). The local backend only (POST .../config:cancel):
        Databricks has no public API for it."""
        check_endpoint_name(name)
        if not self.is_local:
            raise ServingError(f"Databricks has no public API to cancel the update of endpoint '{name}'", Hint(
                python="Cancel it in the Serving UI (the endpoint's page, 'Cancel update'), or wait for it to end.",
                magic="Cancel it in the Serving UI (the endpoint's page, 'Cancel update'), or wait for it to end."),
                error_code="NOT_IMPLEMENTED")
        raw = self._endpoint_call(name, lambda: self._api.do(
            "POST", f"/api/2.0/serving-endpoints/{name}/config:cancel", body={}, headers=self._headers(content=True)),
            what=f"Canceling the update of endpoint '{name}'")
        return EndpointStatus(raw)

    def delete(self, name: str) -> None:
        """Delete the endpoint. Irreversible."""
        check_endpoint_name(name)
        self._endpoint_call(name, lambda: self.workspace.serving_endpoints.delete(name=name),
                            what=f"Deleting endpoint '{name}'")
