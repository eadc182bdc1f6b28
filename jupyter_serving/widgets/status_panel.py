"""`StatusPanel(name)`: an endpoint's state, followed live from a background thread.

Polls GET in a thread (never the kernel's): other cells run while it updates. Shows the endpoint
state, the update state, config version, every served entity's deployment state and message, the
pending config, and after a failure the tail of the failed entity's build logs. Polling backs off
(×1.5 per poll up to the client's `poll_max_interval`) and stops when `until(status)` holds (by
default: the endpoint settles; `until=None` keeps watching), after `timeout`, when "Stop" is
clicked, or when the widget is closed; it then says when and why (`reason`).
`%serve status NAME --watch` renders it.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as W
from traitlets import Bool, Int, Unicode

from jupyter_serving.core.errors import NotFoundError, ServingError
from jupyter_serving.core.status import (
    EndpointStatus,
    deployment_word,
    describe_entity_model,
    describe_workload,
    traffic_of,
    watched_text,
)
from jupyter_serving.widgets._common import (
    AMBER,
    BOX_STYLE,
    GREEN,
    GREY,
    RED,
    badge,
    entity_colors,
    esc,
    message_of,
    note,
    resolve_client,
    table,
    traffic_bar,
)

LOG_TAIL_LINES = 20


def _until_settled(status: EndpointStatus) -> bool:  # the default `until`
    return status.is_settled

DEPLOYMENT_COLORS = {"DEPLOYMENT_READY": GREEN, "DEPLOYMENT_CREATING": AMBER, "DEPLOYMENT_RECOVERING": AMBER,
                     "DEPLOYMENT_FAILED": RED, "DEPLOYMENT_ABORTED": RED}


def state_badge(status: EndpointStatus) -> str:
    """One badge in the Serving UI's words: 'Ready', 'Not ready (Updating)', 'Ready (Update failed)'..."""
    if status.is_stopped:
        color = GREY
    elif status.update_failed:
        color = RED
    else:
        color = AMBER if status.is_updating else (GREEN if status.ready == "READY" else RED)
    return badge(status.state if status.ready or status.is_stopped else "Unknown", color)


def _entities_table(entities: list[dict], traffic: dict[str, int]) -> str:
    rows = []
    for e in entities:
        st = e.get("state") or {}
        dep = st.get("deployment") or ""
        color = DEPLOYMENT_COLORS.get(dep, GREY)
        rows.append([
            f"<b style=\"white-space:nowrap\">{esc(str(e.get('name', '')))}</b>",
            esc(describe_entity_model(e)),
            esc(describe_workload(e)),
            f"{traffic[e['name']]}%" if e.get("name") in traffic else "–",
            f'<span style="color:{color};font-weight:600">{esc(deployment_word(dep) or "–")}</span>',
            esc(st.get("deployment_state_message") or ""),
        ])
    return table(["Entity", "Model", "Workload", "Traffic", "Deployment", "Message"], rows)


def _header_html(status: EndpointStatus, elapsed: float | None, polling: bool) -> str:
    meta = []
    if status.config_version is not None:
        meta.append(f"config version <b>{esc(str(status.config_version))}</b>")
    if polling or elapsed is not None:
        meta.append(("⟳ " if polling else "") + watched_text(elapsed, polling))
    return (f'<div style="display:flex;gap:10px;align-items:center;flex-wrap:wrap;font-size:14px">'
            f'<b style="font-size:15px">{esc(status.name)}</b> {state_badge(status)}'
            f'<span style="color:{GREY}">{" · ".join(meta)}</span></div>')


def _configs_html(status: EndpointStatus) -> list[str]:
    """The serving config's entities (and traffic bar), then the pending config's."""
    parts = []
    if status.entities:
        traffic = status.traffic
        heading = (f"Serving (config v{status.config_version})" if status.ready == "READY"
                   else f"Config v{status.config_version} (not serving)")
        parts.append(f'<div style="margin-top:6px;font-weight:600">{esc(heading)}</div>')
        parts.append(_entities_table(status.entities, traffic))
        if len(traffic) > 1:
            parts.append(traffic_bar(traffic, entity_colors(status.entity_names)))
    else:
        parts.append(f'<div style="margin-top:6px;color:{GREY}">No config serves yet.</div>')
    pending = status.pending_config
    if pending:
        since = pending.get("start_time")
        since_text = f" · started {max(0.0, time.time() - int(since) / 1000):.0f} s ago" if since else ""
        parts.append(f'<div style="margin-top:6px;font-weight:600">Pending config '
                     f'v{esc(str(pending.get("config_version", "?")))}{esc(since_text)}</div>')
        parts.append(_entities_table(status.pending_entities, traffic_of(pending)))
    return parts


def _outcome_note(status: EndpointStatus) -> str:
    if status.update_failed:
        keeps = " The previous config keeps serving." if status.ready == "READY" and status.entities else ""
        return note(f"Update failed: {status.failure_reason().rstrip('.')}.{keeps}", "error")
    if status.is_updating:
        return note("Update in progress: the current config serves until the new one is ready.", "info")
    if status.is_ready:
        return note("Ready: the endpoint accepts queries.", "ok")
    if status.is_stopped:
        return note(f"Stopped: start it with %serve start {status.name}.", "warning")
    return ""


def _logs_html(logs: str, entity: str | None) -> list[str]:
    # no scroll box: the last lines, which say what failed, must be visible without scrolling
    return [f'<div style="margin-top:6px;font-weight:600">Build logs of {esc(entity or "")} '
            f"(last {LOG_TAIL_LINES} lines)</div>",
            '<pre style="background:#f6f8fa;border:1px solid #d0d7de;padding:6px;font-size:12px;'
            f'white-space:pre-wrap;margin:2px 0">{esc(logs or "(empty)")}</pre>']


def render_status(status: EndpointStatus, *, elapsed: float | None = None, polling: bool = False,
                  logs: str | None = None, logs_entity: str | None = None, error: str = "",
                  reason: str = "") -> str:
    """The panel's HTML for one GET (pure, so it can be tested and reused)."""
    parts = [_header_html(status, elapsed, polling), *_configs_html(status)]
    outcome = _outcome_note(status)
    if outcome:
        parts.append(outcome)
    if logs is not None:
        parts += _logs_html(logs, logs_entity)
    if error:
        parts.append(note(error, "warning"))
    if reason:
        parts.append(note(reason, "info"))
    return "\n".join(parts)


class StatusPanel(W.VBox):
    """Live status of endpoint `name`. Traits: `state` (READY/NOT_READY/STOPPED), `config_update`,
    `config_version`, `polling`, `polls`, `error`, `logs`."""

    state = Unicode("", help="READY, NOT_READY or STOPPED ('' before the first poll)")
    config_update = Unicode("")
    config_version = Unicode("")
    polling = Bool(False)
    polls = Int(0)
    error = Unicode("")
    logs = Unicode("")

    def __init__(self, name: str, client: Any = None, *, start: bool = True, interval: float = 0.5,
                 max_interval: float | None = None, timeout: float = 3600.0, title: str | None = None,
                 initial: EndpointStatus | None = None, until: Any = _until_settled, until_text: str = "",
                 **kwargs):
        self.name = name
        self.until = until  # stop watching once until(status) holds; None: until closed or stopped
        self.until_text = until_text or ("no update is running" if until is _until_settled else "the condition holds")
        self.reason = ""  # when and why watching stopped
        self.client = resolve_client(client)
        self.interval = float(interval)
        self.max_interval = float(max_interval if max_interval is not None
                                  else getattr(self.client, "poll_max_interval", 5.0))
        self.timeout = float(timeout)
        self.status: EndpointStatus | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._started_at = time.monotonic()
        self.title = W.HTML(f'<div style="font-size:14px;font-weight:600">{esc(title)}</div>' if title else "")
        self.body = W.HTML(f'<div style="color:{GREY}">Reading endpoint {esc(name)}…</div>')
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="Poll again until settled",
                                       layout=W.Layout(width="110px"))
        self.stop_button = W.Button(description="Stop watching", icon="stop", layout=W.Layout(width="140px"),
                                    disabled=True)
        self.refresh_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__([self.title, self.body, W.HBox([self.refresh_button, self.stop_button])],
                         layout=W.Layout(**BOX_STYLE), **kwargs)
        self.add_class("jupyter-serving-status")
        if initial is not None:  # a GET the caller already made: show it before the first poll
            self._update(initial, 0.0)
            self.polls = 0
        if start:
            self.start()

    # -- control ----------------------------------------------------------------------------------
    def start(self) -> None:
        """(Re)start polling until the endpoint settles. Does nothing if already polling."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            self._started_at = time.monotonic()
            self.reason = ""
            self.polling = True
            self.stop_button.disabled = False
            self._thread = threading.Thread(target=self._run, args=(self._stop,), daemon=True,
                                            name=f"serving-status-{self.name}")
            self._thread.start()

    def stop(self) -> None:
        """Stop polling (the endpoint is not touched)."""
        self._stop.set()

    def close(self) -> None:
        self.stop()
        super().close()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the polling thread to end (for scripts and tests); True if it ended."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # -- polling ------------------------------------------------------------------------------------
    def _run(self, stop: threading.Event) -> None:
        interval = self.interval
        fetched = False  # the failed entity's build logs, once per watch
        try:
            while not stop.is_set():
                elapsed = time.monotonic() - self._started_at
                try:
                    status = self.client.get(self.name)
                except NotFoundError as err:
                    self.error = message_of(err)
                    self.body.value = note(self.error, "error")
                    return
                except ServingError as err:  # a hiccup: say so, keep polling (backed off)
                    self.error = message_of(err) + " (retrying)"
                    if self.status is not None:
                        self._render(self.status, elapsed, polling=True)
                    else:
                        self.body.value = note(self.error, "warning")
                else:
                    self.error = ""
                    self._update(status, elapsed)
                    if status.is_settled and (status.update_failed or status.failed_entity()) and not fetched:
                        self._fetch_logs(status)
                        fetched = True
                    if self.until is not None and self.until(status):
                        self.reason = f"Stopped watching after {elapsed:.0f} s: {self.until_text}."
                        self._render(status, elapsed, polling=False)
                        return
                if elapsed >= self.timeout:
                    still = "; the endpoint is still updating" if self.status and self.status.is_updating else ""
                    self.error = self.reason = f"Stopped watching after {self.timeout:.0f} s (the timeout){still}."
                    self._render(self.status, elapsed, polling=False)
                    return
                if stop.wait(interval):
                    break
                interval = min(interval * 1.5, self.max_interval)
            elapsed = time.monotonic() - self._started_at
            self.reason = self.reason or f"Stopped watching after {elapsed:.0f} s (stopped by hand)."
            if self.status is not None:
                self._render(self.status, elapsed, polling=False)
        finally:
            self.polling = False
            self.stop_button.disabled = True

    def _update(self, status: EndpointStatus, elapsed: float) -> None:
        self.status = status
        self.polls += 1
        self.state = "STOPPED" if status.is_stopped else (status.ready or "")
        self.config_update = status.config_update or ""
        self.config_version = "" if status.config_version is None else str(status.config_version)
        self._render(status, elapsed, polling=not status.is_settled)

    def _render(self, status: EndpointStatus | None, elapsed: float, polling: bool) -> None:
        if status is None:
            return
        entity = status.failed_entity()
        self.body.value = render_status(status, elapsed=elapsed, polling=polling,
                                        logs=self.logs if self.logs or entity else None,
                                        logs_entity=entity, error=self.error,
                                        reason="" if polling or self.reason == self.error else self.reason)

    def _fetch_logs(self, status: EndpointStatus) -> None:
        entity = status.failed_entity() or (status.pending_entities or status.entities or [{}])[0].get("name")
        if not entity:
            return
        try:
            # A named entity's build logs are read even when it exists only in the pending config.
            text = self.client.build_logs(self.name, entity, tail=LOG_TAIL_LINES)
        except Exception as err:  # noqa: BLE001 - logs are a bonus; say why they are missing
            text = f"(build logs unavailable: {message_of(err)})"
        self.logs = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def status_panel(name: str, client: Any = None, **kwargs) -> StatusPanel:
    """What `%serve status NAME --watch` displays: a StatusPanel following the endpoint.

    Pass `initial=client.get(name)` when you already have it: the panel shows it at once."""
    return StatusPanel(name, client, **kwargs)
