"""`EndpointStatus`: a readable view of a serving endpoint (GET /api/2.0/serving-endpoints/{name}).

Pure: built from the JSON dict the server returns, so that fields the typed SDK drops (workload
types missing from its enum, `state.suspend`) are kept. Rich display (`_repr_html_`) and a readable
text `__repr__`.
"""
from __future__ import annotations

import datetime as _dt
import html
from typing import Any

from jupyter_serving.core import rules

READY = "READY"
NOT_UPDATING = "NOT_UPDATING"
IN_PROGRESS = "IN_PROGRESS"
UPDATE_FAILED = "UPDATE_FAILED"
UPDATE_CANCELED = "UPDATE_CANCELED"
# The config updates that failed (state.config_update) and the served-entity deployments that did
# (state.deployment): the one definition the client, the widgets and the panel use.
FAILED_UPDATES = (UPDATE_FAILED, UPDATE_CANCELED)
FAILED_DEPLOYMENTS = ("DEPLOYMENT_FAILED", "DEPLOYMENT_ABORTED")

# The one vocabulary users read (the Serving UI's words): served-entity deployments, config updates.
DEPLOYMENT_WORDS = {
    "DEPLOYMENT_READY": "Ready",
    "DEPLOYMENT_CREATING": "Creating",
    "DEPLOYMENT_RECOVERING": "Recovering",
    "DEPLOYMENT_FAILED": "Failed",
    "DEPLOYMENT_ABORTED": "Aborted",
}
UPDATE_WORDS = {
    NOT_UPDATING: "Not updating",
    IN_PROGRESS: "Updating",
    UPDATE_FAILED: "Update failed",
    UPDATE_CANCELED: "Update canceled",
}


def _humane(raw: str) -> str:
    return raw.replace("_", " ").capitalize()


def deployment_word(state: str | None) -> str:
    """'Ready', 'Creating', 'Failed', ... for a served entity's `state.deployment` ('' if none)."""
    if not state:
        return ""
    return DEPLOYMENT_WORDS.get(state) or _humane(state.removeprefix("DEPLOYMENT_"))


def update_word(state: str | None) -> str:
    """'Updating', 'Update failed', ... for an endpoint's `state.config_update` ('' if none)."""
    if not state:
        return ""
    return UPDATE_WORDS.get(state) or _humane(state)


def concurrency_text(low: Any, high: Any) -> str:
    """'4 concurrent' or '4-8 concurrent' ('' when unknown)."""
    if low is None:
        return ""
    return f"{low} concurrent" if low == high or high is None else f"{low}-{high} concurrent"


# `%serve status NAME --watch --until WORD`: when to stop watching, and how to say it.
WATCH_UNTIL: dict[str, tuple[str, Any]] = {
    "ready": ("it is ready", lambda s: s.is_ready and s.is_settled),
    "settled": ("no update is running", lambda s: s.is_settled),
    "stopped": ("it is stopped", lambda s: s.is_stopped and s.is_settled),
}


def watched_text(elapsed: float | None, polling: bool) -> str:
    """How long an endpoint has been watched: 'watching · 7 s', then 'watched for 7 s'."""
    if elapsed is None:
        return "watching" if polling else ""
    return f"watching · {elapsed:.0f} s" if polling else f"watched for {elapsed:.0f} s"


def _ts(ms: Any) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromtimestamp(int(ms) / 1000, tz=_dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _fmt_ts(ms: Any) -> str:
    ts = _ts(ms)
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC") if ts else ""


def entity_list(config: dict | None) -> list[dict]:
    """Served entities of a config (folding the deprecated served_models in)."""
    if not config:
        return []
    entities = [dict(e) for e in config.get("served_entities") or []]
    if not entities:
        for model in config.get("served_models") or []:
            e = dict(model)
            if "model_name" in e:
                e.setdefault("entity_name", e.pop("model_name"))
            if "model_version" in e:
                e.setdefault("entity_version", e.pop("model_version"))
            entities.append(e)
    return entities


def traffic_of(config: dict | None) -> dict[str, int]:
    routes = ((config or {}).get("traffic_config") or {}).get("routes") or []
    out: dict[str, int] = {}
    for r in routes:
        name = r.get("served_entity_name") or r.get("served_model_name")
        if name is not None:
            out[name] = r.get("traffic_percentage", 0)
    return out


def describe_workload(entity: dict) -> str:
    """'CPU, Small (4 concurrent requests)', 'GPU_SMALL, 4-8 concurrent requests, scale to zero'."""
    wtype = entity.get("workload_type") or "CPU"
    try:
        low, high = rules.entity_concurrency(entity)
    except (TypeError, ValueError, KeyError):
        low, high = None, None
    size = entity.get("workload_size")
    conc = concurrency_text(low, high)
    parts = [wtype]
    if size:
        parts.append(f"{size} ({conc})" if conc else size)
    elif conc:
        parts.append(conc)
    if entity.get("scale_to_zero_enabled"):
        parts.append("scale to zero")
    return ", ".join(parts)


def describe_entity_model(entity: dict) -> str:
    if entity.get("external_model"):
        ext = entity["external_model"]
        return f"external {ext.get('provider', '')}:{ext.get('name', '')}".strip()
    name = entity.get("entity_name") or ""
    version = entity.get("entity_version")
    return f"{name} v{version}" if version not in (None, "") else name


class EndpointStatus:
    """A serving endpoint as the server describes it, with accessors for what users look at."""

    def __init__(self, raw: dict):
        self.raw = dict(raw or {})

    # --- identity -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.raw.get("name", "")

    @property
    def id(self) -> str | None:
        return self.raw.get("id")

    @property
    def creator(self) -> str | None:
        return self.raw.get("creator")

    @property
    def created(self) -> _dt.datetime | None:
        return _ts(self.raw.get("creation_timestamp"))

    @property
    def updated(self) -> _dt.datetime | None:
        return _ts(self.raw.get("last_updated_timestamp"))

    @property
    def tags(self) -> dict[str, str]:
        return {t.get("key"): t.get("value") for t in self.raw.get("tags") or []}

    @property
    def route_optimized(self) -> bool:
        return bool(self.raw.get("route_optimized"))

    @property
    def endpoint_url(self) -> str | None:
        return self.raw.get("endpoint_url")

    # --- state ----------------------------------------------------------------------------------
    @property
    def ready(self) -> str | None:
        return (self.raw.get("state") or {}).get("ready")

    @property
    def config_update(self) -> str | None:
        state = self.raw.get("state") or {}
        return state.get("config_update") or state.get("update_state")

    @property
    def suspend(self) -> str | None:
        return (self.raw.get("state") or {}).get("suspend")

    @property
    def is_stopped(self) -> bool:
        return self.suspend not in (None, "", "NOT_SUSPENDED")

    @property
    def is_ready(self) -> bool:
        return self.ready == READY and not self.is_stopped

    @property
    def is_updating(self) -> bool:
        return self.config_update == IN_PROGRESS

    @property
    def is_settled(self) -> bool:
        """No update running (the SDK waiter's condition)."""
        return not self.is_updating

    @property
    def update_failed(self) -> bool:
        return self.config_update in FAILED_UPDATES

    @property
    def state(self) -> str:
        """The state as the Serving UI words it: 'Ready', 'Not ready (Updating)', ..."""
        if self.is_stopped:
            return "Not ready (Stopped)"
        base = "Ready" if self.ready == READY else "Not ready"
        if self.is_updating:
            return f"{base} (Updating)"
        if self.config_update == UPDATE_FAILED:
            return f"{base} (Update failed)"
        if self.config_update == UPDATE_CANCELED:
            return f"{base} (Update canceled)"
        return base

    # --- config ---------------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        return self.raw.get("config") or {}

    @property
    def config_version(self) -> Any:
        return self.config.get("config_version")

    @property
    def entities(self) -> list[dict]:
        return entity_list(self.config)

    @property
    def entity_names(self) -> list[str]:
        return [e.get("name") for e in self.entities if e.get("name")]

    def entity(self, name: str) -> dict | None:
        for e in self.entities:
            if e.get("name") == name:
                return e
        return None

    @property
    def traffic(self) -> dict[str, int]:
        return traffic_of(self.config)

    @property
    def pending_config(self) -> dict | None:
        return self.raw.get("pending_config") or None

    @property
    def pending_entities(self) -> list[dict]:
        return entity_list(self.pending_config)

    @property
    def messages(self) -> list[str]:
        """State messages of the served entities (active config, then pending config)."""
        out = []
        for label, ents in (("", self.entities), ("pending ", self.pending_entities)):
            for e in ents:
                st = e.get("state") or {}
                msg = st.get("deployment_state_message")
                if msg:
                    word = deployment_word(st.get("deployment"))
                    out.append(f"{label}{e.get('name')}: {word} ({msg})" if word else f"{label}{e.get('name')}: {msg}")
        return out

    def failed_entity(self) -> str | None:
        """The served entity whose deployment failed (the pending config first), if any."""
        for ents in (self.pending_entities, self.entities):
            for e in ents:
                if (e.get("state") or {}).get("deployment") in FAILED_DEPLOYMENTS:
                    return e.get("name")
        return None

    def failure_reason(self) -> str:
        """The most useful line explaining a failed update."""
        for ents in (self.pending_entities, self.entities):
            for e in ents:
                st = e.get("state") or {}
                if st.get("deployment") in FAILED_DEPLOYMENTS or (
                        st.get("deployment_state_message") and "fail" in st.get("deployment_state_message", "").lower()):
                    return (f"served entity '{e.get('name')}': "
                            f"{st.get('deployment_state_message') or deployment_word(st.get('deployment'))}")
        msgs = self.messages
        return msgs[0] if msgs else (update_word(self.config_update).lower() or "unknown reason")

    # --- summaries ------------------------------------------------------------------------------
    def traffic_text(self, traffic: dict[str, int] | None = None) -> str:
        traffic = self.traffic if traffic is None else traffic
        return ", ".join(f"{k}={v}%" for k, v in traffic.items())

    def entities_text(self, entities: list[dict] | None = None) -> str:
        entities = self.entities if entities is None else entities
        return ", ".join(f"{e.get('name')} ({describe_entity_model(e)})" for e in entities)

    def summary(self) -> str:
        """One line: name, state, entities, traffic."""
        parts = [f"{self.name}: {self.state}"]
        if self.config_version is not None:
            parts.append(f"config v{self.config_version}")
        if self.entities:
            parts.append(self.entities_text())
        if self.traffic and len(self.traffic) > 1:
            parts.append("traffic " + self.traffic_text())
        return " · ".join(parts)

    def progress_line(self, elapsed: float | None = None) -> str:
        deployments = []
        for e in self.pending_entities or self.entities:
            st = (e.get("state") or {}).get("deployment")
            if st:
                deployments.append(f"{e.get('name')} {deployment_word(st).lower()}")
        text = f"{self.name}: {self.state}"
        if deployments:
            text += " · " + ", ".join(deployments)
        if elapsed is not None:
            text += f" · {elapsed:.0f} s"
        return text

    def entities_frame(self, pending: bool = False):
        import pandas as pd

        rows = []
        for e in (self.pending_entities if pending else self.entities):
            st = e.get("state") or {}
            try:
                low, high = rules.entity_concurrency(e)
            except (TypeError, ValueError, KeyError):
                low, high = None, None
            rows.append({
                "entity": e.get("name"),
                "model": e.get("entity_name") or (e.get("external_model") or {}).get("name"),
                "version": e.get("entity_version"),
                "workload_type": e.get("workload_type") or "CPU",
                "workload_size": e.get("workload_size"),
                "min_concurrency": low,
                "max_concurrency": high,
                "scale_to_zero": bool(e.get("scale_to_zero_enabled")),
                "traffic": (self.traffic if not pending else traffic_of(self.pending_config)).get(e.get("name")),
                "deployment": deployment_word(st.get("deployment")),
                "message": st.get("deployment_state_message") or "",
            })
        return pd.DataFrame(rows, columns=["entity", "model", "version", "workload_type", "workload_size",
                                           "min_concurrency", "max_concurrency", "scale_to_zero", "traffic",
                                           "deployment", "message"])

    def as_dict(self) -> dict:
        return dict(self.raw)

    def as_sdk(self):
        """The same endpoint as databricks-sdk's typed `ServingEndpointDetailed`."""
        from databricks.sdk.service.serving import ServingEndpointDetailed

        return ServingEndpointDetailed.from_dict(self.raw)

    # --- display ----------------------------------------------------------------------------------
    @staticmethod
    def _entity_lines(entities: list[dict], traffic: dict[str, int]) -> list[str]:
        lines = []
        for e in entities:
            st = e.get("state") or {}
            line = f"    {e.get('name')}: {describe_entity_model(e)} · {describe_workload(e)}"
            if st.get("deployment"):
                line += f" · {deployment_word(st.get('deployment'))}"
            if e.get("name") in traffic:
                line += f" · traffic {traffic[e.get('name')]}%"
            lines.append(line)
            if st.get("deployment_state_message"):
                lines.append(f"      {st['deployment_state_message']}")
        return lines

    def _text_lines(self) -> list[str]:
        lines = [f"Endpoint {self.name}: {self.state}"]
        meta = []
        if self.config_version is not None:
            meta.append(f"config version {self.config_version}")
        if self.creator:
            meta.append(f"creator {self.creator}")
        if self.raw.get("last_updated_timestamp"):
            meta.append(f"updated {_fmt_ts(self.raw.get('last_updated_timestamp'))}")
        if meta:
            lines.append("  " + ", ".join(meta))
        lines.append("  Served entities:")
        lines.extend(self._entity_lines(self.entities, self.traffic) or ["    (none)"])
        pending = self.pending_config
        if pending:
            start = _fmt_ts(pending.get("start_time"))
            lines.append(f"  Pending config v{pending.get('config_version', '?')}"
                         + (f" (since {start})" if start else "") + ":")
            lines.extend(self._entity_lines(self.pending_entities, traffic_of(pending)))
        if self.tags:
            lines.append("  Tags: " + ", ".join(f"{k}={v}" for k, v in self.tags.items()))
        return lines

    def __repr__(self) -> str:
        return "\n".join(self._text_lines())

    def __str__(self) -> str:
        return self.__repr__()

    def _repr_html_(self) -> str:
        esc = html.escape
        color = "#1a7f37" if self.is_ready and not self.update_failed else (
            "#9a6700" if self.is_updating else "#cf222e")
        head = (f'<div><b>{esc(self.name)}</b> <span style="color:{color};font-weight:bold">'
                f"{esc(self.state)}</span>")
        meta = []
        if self.config_version is not None:
            meta.append(f"config v{esc(str(self.config_version))}")
        if self.creator:
            meta.append(f"creator {esc(self.creator)}")
        if self.raw.get("last_updated_timestamp"):
            meta.append(f"updated {esc(_fmt_ts(self.raw.get('last_updated_timestamp')))}")
        if meta:
            head += f' <span style="color:#666">({" · ".join(meta)})</span>'
        head += "</div>"

        def table(entities: list[dict], traffic: dict[str, int]) -> str:
            rows = []
            for e in entities:
                st = e.get("state") or {}
                msg = st.get("deployment_state_message") or ""
                rows.append(
                    "<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in (
                        e.get("name"), describe_entity_model(e), describe_workload(e),
                        f"{traffic[e.get('name')]}%" if e.get("name") in traffic else "",
                        deployment_word(st.get("deployment")), msg)) + "</tr>")
            header = "".join(f"<th>{h}</th>" for h in
                             ("entity", "model", "workload", "traffic", "deployment", "message"))
            return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

        parts = [head, table(self.entities, self.traffic)]
        pending = self.pending_config
        if pending:
            start = _fmt_ts(pending.get("start_time"))
            parts.append(f"<div><b>Pending config v{esc(str(pending.get('config_version', '?')))}</b>"
                         + (f" since {esc(start)}" if start else "") + "</div>")
            parts.append(table(self.pending_entities, traffic_of(pending)))
        if self.tags:
            parts.append("<div>Tags: " + ", ".join(f"<code>{esc(k)}={esc(str(v))}</code>"
                                                   for k, v in self.tags.items()) + "</div>")
        return "\n".join(parts)
