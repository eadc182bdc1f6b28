"""`BenchmarkWidget`: benchmark and size an endpoint from a notebook, without blocking the kernel.

    from jupyter_serving.bench.widget import BenchmarkWidget
    BenchmarkWidget("my-endpoint")          # or BenchmarkWidget("my-endpoint", client, payload=df)

A mode toggle switches to the LLM mode (`llm_widget.LlmBenchPanel`, `mode="llm"`: every request
streams; TTFT, ITL, tokens/s; provisioned-throughput sizing and Apply). Classic mode:
inputs (concurrency levels, seconds per step, target QPS, p99 target, payload), Run / Stop, a
progress bar across steps, live charts (latency percentiles and throughput against concurrency,
PNG in an Output widget), the results table, and a recommendation card whose Apply button resizes
the endpoint's served entity and follows the update until the endpoint is READY again.

Everything slow runs in a background thread (the load generator in its own event loop, see
`runner.BenchmarkJob`); the click handlers return at once, so the kernel stays free and Stop works.
Widget traits and Output contents are updated from that thread. Attributes for code and tests:
`frame` (DataFrame of the steps so far), `recommendation`, `result` (BenchResult), `error`,
`chart_png` (bytes of the last chart), `running` / `applying` (traits), `wait(timeout)`.
"""
from __future__ import annotations

import base64
import html
import json
import threading
import time
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Int

from jupyter_serving.bench.background import join_all
from jupyter_serving.bench.bench_result import BenchResult
from jupyter_serving.bench.endpoint import (
    apply_recommendation,
    check_endpoint,
    config_changes,
    default_payload,
    entity_limit,
    host_and_token,
    limit_notes,
    resolve_payload,
)
from jupyter_serving.bench.errors import BenchError, error_message
from jupyter_serving.bench.options import DEFAULT_CONCURRENCY, DEFAULT_DURATION_S, DEFAULT_WARMUP_S, parse_levels
from jupyter_serving.bench.report import recommendation_html, render_png, table

PAYLOAD_PREVIEW_BYTES = 20_000
STYLE = {"description_width": "initial"}


def _png_output(png: bytes) -> dict:
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(png).decode("ascii"),
                     "text/plain": "<latency and throughput chart>"}}


def _html_output(markup: str, text: str) -> dict:
    return {"output_type": "display_data", "metadata": {},
            "data": {"text/html": markup, "text/plain": text}}


class BenchmarkWidget(widgets.VBox):
    """Benchmark endpoint `name` (through `client`, default `api.get_client()`) and apply the sizing."""

    running = Bool(False, help="a benchmark is running")
    applying = Bool(False, help="an Apply is running")
    steps_done = Int(0, help="steps finished in the current run")

    def __init__(self, name: str, client: Any = None, *, payload: Any = None, entity: str | None = None,
                 concurrency: Any = DEFAULT_CONCURRENCY, duration: float = DEFAULT_DURATION_S,
                 warmup: float = DEFAULT_WARMUP_S, target_qps: float | None = None,
                 p99_ms: float | None = None, mode: str = "classic", llm: dict | None = None, **kwargs: Any):
        self.name = name
        self._client = client
        self._payload = payload
        self._payload_preview: str | None = None
        self.entity = entity
        self.warmup = float(warmup)
        self.frame = None
        self.recommendation = None
        self.result: BenchResult | None = None
        self.error: BaseException | None = None
        self.chart_png: bytes | None = None
        self._job = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._apply_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.entity_names: list[str] = []

        self._build_inputs(concurrency, duration, target_qps, p99_ms)
        self._build_controls()
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.apply_button.on_click(lambda _: self.apply())
        self.target_qps.observe(self._targets_changed, "value")
        self.p99_ms.observe(self._targets_changed, "value")

        classic = [
            widgets.HBox([self.concurrency, self.duration, self.target_qps, self.p99_ms]),
            self.payload,
            widgets.HBox([self.run_button, self.stop_button, self.apply_button, self.apply_entity,
                          self.apply_reason], layout=widgets.Layout(align_items="center")),
            widgets.HBox([self.progress, self.status]),
            self.chart,
            self.results,
            self.card,
        ]
        self.classic = widgets.VBox(children=classic)
        self.llm = None  # the LLM mode's LlmBenchPanel (bench/llm_widget.py), made when first shown
        self._llm_options = dict(llm or {})
        self.mode = widgets.ToggleButtons(options=[("Classic", "classic"), ("LLM (streaming)", "llm")],
                                          value=mode, tooltips=["requests/s and latency", "TTFT, ITL, tokens/s"])
        self.mode.observe(lambda change: self._show_mode(change["new"]), "value")
        super().__init__(children=[self.title, self.mode, self.classic], **kwargs)
        self._show_mode(mode)
        self._update_apply()

    def _show_mode(self, mode: str) -> None:
        """The classic inputs, or the LLM mode's panel (streamed requests, provisioned-throughput sizing)."""
        if mode == "llm" and self.llm is None:
            from jupyter_serving.bench.llm_widget import LlmBenchPanel

            self.llm = LlmBenchPanel(self.name, lambda: self.client, entity=self.entity, **self._llm_options)
            self.children = (*self.children, self.llm)
        self.classic.layout.display = None if mode == "classic" else "none"
        if self.llm is not None:
            self.llm.layout.display = None if mode == "llm" else "none"

    def _build_inputs(self, concurrency: Any, duration: float, target_qps: float | None,
                      p99_ms: float | None) -> None:
        levels = ",".join(str(c) for c in parse_levels(concurrency))
        self.title = widgets.HTML(f"<b>Benchmark endpoint '{html.escape(self.name)}'</b>"
                                  + (f" (served entity '{html.escape(self.entity)}')" if self.entity else ""))
        self.concurrency = widgets.Text(value=levels, description="Concurrency levels", style=STYLE,
                                        placeholder="1,2,4,8",
                                        layout=widgets.Layout(width="260px"))
        self.duration = widgets.BoundedFloatText(value=float(duration), min=0.5, max=3600.0, step=1.0,
                                                 description="Seconds per step", style=STYLE,
                                                 layout=widgets.Layout(width="190px"))
        self.target_qps = widgets.BoundedFloatText(value=float(target_qps or 0.0), min=0.0, max=1e7,
                                                   description="Target QPS (0: none)", style=STYLE,
                                                   layout=widgets.Layout(width="220px"))
        self.p99_ms = widgets.BoundedFloatText(value=float(p99_ms or 0.0), min=0.0, max=1e7,
                                               description="p99 target ms (0: none)", style=STYLE,
                                               layout=widgets.Layout(width="230px"))
        self.payload = widgets.Textarea(value="", description="Payload (JSON)", style=STYLE,
                                        placeholder="empty: the example from the endpoint's schema",
                                        layout=widgets.Layout(width="98%", height="70px"))
        if self._payload is not None:
            preview = self._preview(self._payload)
            if preview is not None:
                self.payload.value = self._payload_preview = preview
            else:
                self.payload.placeholder = "the payload given in code (too large to show)"

    def _build_controls(self) -> None:
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play",
                                         tooltip="run the sweep in the background")
        self.stop_button = widgets.Button(description="Stop", button_style="warning", icon="stop",
                                          disabled=True, tooltip="end the current step and stop")
        self.apply_button = widgets.Button(description="Apply", button_style="success", icon="check",
                                           disabled=True,
                                           tooltip="resize the endpoint as recommended and wait until READY")
        self.apply_entity = widgets.Dropdown(options=[], value=None, description="Resize", style=STYLE,
                                             tooltip="the served entity Apply resizes",
                                             layout=widgets.Layout(width="240px", display="none"))
        self.apply_entity.observe(lambda _: self._update_apply(), "value")
        self.apply_reason = widgets.HTML(value="")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="Progress",
                                              style=STYLE, layout=widgets.Layout(width="60%"))
        self.status = widgets.HTML(value="Set the inputs and press Run.")
        self.chart = widgets.Output(layout=widgets.Layout(min_height="40px"))
        self.results = widgets.Output()
        self.card = widgets.HTML(value="")

    # ------------------------------------------------------------------------------------------
    # helpers

    @property
    def client(self):
        if self._client is None:
            from jupyter_serving import api

            self._client = api.get_client()
        return self._client

    @staticmethod
    def _preview(payload: Any) -> str | None:
        try:
            text = json.dumps(payload) if isinstance(payload, (dict, list)) else None
            if text is None:
                from jupyter_serving.bench.target import encode_payload

                text = encode_payload(payload).decode("utf-8")
        except (TypeError, ValueError, UnicodeDecodeError):
            return None
        return text if len(text) <= PAYLOAD_PREVIEW_BYTES else None

    def _say(self, message: str, kind: str = "") -> None:
        color = {"error": "#b42318", "warning": "#a15c00", "ok": "#1a7f37"}.get(kind, "inherit")
        self.status.value = f"<span style='color:{color}'>{html.escape(message)}</span>"

    def _targets(self) -> tuple[float | None, float | None]:
        return (self.target_qps.value or None), (self.p99_ms.value or None)

    def _body(self) -> Any:
        text = self.payload.value.strip()
        if self._payload is not None and (text == (self._payload_preview or "") or not text):
            return self._payload
        if not text:
            body = default_payload(self.client, self.name, self.entity)
            self._payload_preview = json.dumps(body)
            self.payload.value = self._payload_preview
            return body
        return resolve_payload(self.client, self.name, text, self.entity)

    def _show_chart(self, png: bytes) -> None:
        self.chart_png = png
        self.chart.outputs = (_png_output(png),)

    def _show_frame(self, frame) -> None:
        shown = table(frame)
        self.results.outputs = (_html_output(shown.to_html(), shown.to_string()),)

    def _show_card(self, applied: str | None = None) -> None:
        rec = self.recommendation
        if rec is None:
            hint = ("Set a target QPS for a sizing recommendation." if self.frame is not None
                    and len(self.frame) and not self._targets()[0] else "")
            self.card.value = f"<div style='color:#555'>{html.escape(hint)}</div>" if hint else ""
        else:
            self.card.value = recommendation_html(rec, applied=applied)
        self._update_apply()

    def _set_entities(self, names: list[str]) -> None:
        """The served entities Apply can resize: a Dropdown when there are several (default: the
        benchmarked one)."""
        self.entity_names = names
        self.apply_entity.options = names
        self.apply_entity.value = self.entity if self.entity in names else (names[0] if len(names) == 1 else None)
        self.apply_entity.layout.display = None if len(names) > 1 else "none"
        self._update_apply()

    def apply_blocked(self) -> str | None:
        """Why Apply cannot run now (None: it can)."""
        if self.running:
            return "Wait for the benchmark to finish."
        if self.applying:
            return "Applying…"
        if self.recommendation is None:
            return ("Set a target QPS for a recommendation to apply." if self.frame is not None
                    else "Run the benchmark with a target QPS to get a recommendation to apply.")
        if len(self.entity_names) > 1 and not self.apply_entity.value:
            return (f"'{self.name}' serves several entities ({', '.join(self.entity_names)}): "
                    "pick the one to resize.")
        return None

    def _update_apply(self) -> None:
        reason = self.apply_blocked()
        self.apply_button.disabled = reason is not None
        self.apply_button.tooltip = reason or "resize the endpoint as recommended and wait until READY"
        quiet = reason is None or self.running or self.applying
        self.apply_reason.value = "" if quiet else f"<span style='color:#555'>{html.escape(reason)}</span>"

    def _recommend(self) -> None:
        from jupyter_serving.bench.sizing import recommend

        target, p99 = self._targets()
        self.recommendation = None
        if target and self.frame is not None and len(self.frame):
            try:
                self.recommendation = recommend(self.frame, target, p99_target_ms=p99)
            except ValueError as err:
                self._say(f"No recommendation: {err}", "warning")
        if self.result is not None:
            self.result.recommendation = self.recommendation
            self.result.target_qps, self.result.p99_ms = target, p99
        self._show_card()

    def _targets_changed(self, change) -> None:
        if not self.running and self.frame is not None:
            self._recommend()
            if self.frame is not None and len(self.frame):
                target, p99 = self._targets()
                self._show_chart(render_png(self.name, self.frame, duration=self.duration.value,
                                               target_qps=target, p99_ms=p99))

    # ------------------------------------------------------------------------------------------
    # actions (return at once; the work runs in threads)

    def run(self) -> None:
        """Start a sweep with the current inputs (what the Run button does)."""
        with self._lock:
            if self.running or self.applying:
                return
            try:
                levels = parse_levels(self.concurrency.value)
            except BenchError as err:
                self.error = err
                self._say(str(err), "error")
                return
            self.running = True
        self.error = None
        self.frame = self.result = self.recommendation = self._job = None
        self.steps_done = 0
        self._stop = threading.Event()
        self.run_button.disabled = True
        self.apply_button.disabled = True
        self.stop_button.disabled = False
        self.progress.bar_style = ""
        self.progress.max = float(len(levels))
        self.progress.value = 0.0
        self.card.value = ""
        self.results.outputs = ()
        self._say("Starting…")
        self._thread = threading.Thread(target=self._work, args=(levels,), daemon=True,
                                        name="jupyter-serving-bench-widget")
        self._thread.start()

    def stop(self) -> None:
        """End the current step and run no further steps (what the Stop button does)."""
        self._stop.set()
        job = self._job
        if job is not None:
            job.stop()
        if self.running:
            self.stop_button.disabled = True
            self._say("Stopping after the current step's requests return…", "warning")

    def apply(self) -> None:
        """Resize the endpoint as recommended, in the background (what the Apply button does)."""
        with self._lock:
            if self.apply_blocked() is not None:
                return
            self.applying = True
        self.apply_button.disabled = True
        self.run_button.disabled = True
        self._apply_thread = threading.Thread(target=self._apply_work, args=(self.recommendation,),
                                              daemon=True, name="jupyter-serving-bench-apply")
        self._apply_thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running benchmark and Apply; True when both are finished."""
        return join_all((self._thread, self._apply_thread), timeout)

    # ------------------------------------------------------------------------------------------
    # background work

    def _work(self, levels: list[int]) -> None:
        duration = float(self.duration.value)
        try:
            self._say("Reading the endpoint…")
            status = check_endpoint(self.client, self.name, self.entity)
            self._set_entities(list(status.entity_names))
            limit = entity_limit(status, self.entity)
            notes = limit_notes(levels, limit)
            body = self._body()
            host, token = host_and_token(self.client)
            if self._stop.is_set():
                self.progress.bar_style = "warning"
                self._say("Stopped before the first step.", "warning")
                return
            self._sweep(host, token, body, levels, duration, limit)
            self._conclude(levels, duration, notes)
        except Exception as err:  # noqa: BLE001 - shown in the widget, kept in .error
            self.error = err
            self.progress.bar_style = "danger"
            self._say(error_message(err), "error")
        finally:
            self.run_button.disabled = False
            self.stop_button.disabled = True
            self.running = False
            self._update_apply()

    def _on_step(self, steps: list, step, duration: float) -> None:  # the load generator's thread
        from jupyter_serving.bench.runner import to_frame

        steps.append(step)
        self.frame = to_frame(list(steps))
        self.steps_done = len(steps)
        self.progress.value = float(len(steps))
        target, p99 = self._targets()
        self._show_frame(self.frame)
        self._show_chart(render_png(self.name, self.frame, duration=duration, target_qps=target, p99_ms=p99))

    def _sweep(self, host: str, token: str | None, body: Any, levels: list[int], duration: float,
               limit: int | None) -> None:
        """Run the sweep as a BenchmarkJob, showing the step in progress until it ends."""
        from jupyter_serving.bench.runner import BenchmarkJob, sweep, to_frame

        steps: list = []
        self._job = job = BenchmarkJob(sweep, host, token, self.name, body, levels, duration=duration,
                                       warmup=self.warmup, entity=self.entity,
                                       on_step=lambda step: self._on_step(steps, step, duration))
        job.start()
        if self._stop.is_set():
            job.stop()
        step_started, seen = time.monotonic(), 0
        while not job.wait(0.2):
            if len(steps) != seen:
                seen, step_started = len(steps), time.monotonic()
            if not self._stop.is_set() and seen < len(levels):
                self._show_step(levels, seen, time.monotonic() - step_started, duration, limit)
        frame = job.result()
        self.frame = frame if frame is not None else to_frame(steps)

    def _show_step(self, levels: list[int], index: int, elapsed: float, duration: float,
                   limit: int | None) -> None:
        self.progress.value = index + min(elapsed / (duration + self.warmup), 0.95)
        above = limit is not None and levels[index] > limit
        self._say(f"Step {index + 1}/{len(levels)}: concurrency {levels[index]} "
                  f"({duration:g} s after {self.warmup:g} s warm-up)…"
                  + (f" Above the endpoint's {limit} concurrent requests: expect 429s." if above else ""))

    def _conclude(self, levels: list[int], duration: float, notes: list[str]) -> None:
        """The result, the recommendation and the final status line of a finished sweep."""
        stopped = self._stop.is_set() or bool(len(self.frame) and self.frame["interrupted"].any())
        target, p99 = self._targets()
        self.result = BenchResult(endpoint=self.name, frame=self.frame, mode="closed", entity=self.entity,
                                  duration=duration, target_qps=target, p99_ms=p99, interrupted=stopped,
                                  notes=notes, client=self.client, _png=self.chart_png)
        self._recommend()
        if len(self.frame):
            self._show_frame(self.frame)
        if stopped:
            self.progress.bar_style = "warning"
            self._say(f"Stopped after {len(self.frame)} of {len(levels)} step(s).", "warning")
        else:
            self.progress.value = self.progress.max
            self.progress.bar_style = "success"
            self._say(f"Done: {len(self.frame)} step(s)." + (f" {notes[0]}" if notes else ""), "ok")

    def _apply_work(self, rec) -> None:
        changes = config_changes(rec)
        what = ", ".join(f"{k}={v}" for k, v in changes.items())
        try:
            self._say(f"Applying {what}…")

            def progress(status, elapsed) -> None:
                self._say(f"Applying {what}: {status.progress_line(elapsed)}")

            status = apply_recommendation(self.client, self.name, rec,
                                          entity=self.apply_entity.value or self.entity, on_progress=progress)
            done = f"Applied {what}: endpoint '{self.name}' is {status.state}."
            self._show_card(applied=done)
            self._say(done, "ok")
        except Exception as err:  # noqa: BLE001
            self.error = err
            self._say(f"Apply failed: {error_message(err)}", "error")
        finally:
            self.run_button.disabled = self.running
            self.applying = False
            self._update_apply()


__all__ = ["BenchmarkWidget"]
