"""The benchmark widget's LLM mode: stream-benchmark a chat endpoint and size its provisioned throughput.

`BenchmarkWidget(name, mode="llm")` (or its mode toggle) shows this panel; on its own:

    from jupyter_serving.bench.llm_widget import LlmBenchPanel
    LlmBenchPanel("my-llm", client)

Inputs (concurrency levels, seconds per level, prompt and max tokens, custom_inputs, target
requests/s, TTFT and TPOT targets), Run / Stop, a progress bar, the live chart (TTFT and ITL
percentiles, token throughput), the table, and a provisioned-throughput card whose Apply button sets
the PT entity's model units and follows the update until READY (disabled, with the reason, for an
endpoint that is not provisioned throughput). Slow work runs in background threads
(`runner.BenchmarkJob`); attributes for code and tests: `frame`, `steps`, `recommendation`, `result`,
`error`, `chart_png`, the `running` / `applying` traits, `wait(timeout)`.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Int

from jupyter_serving.bench.background import join_all
from jupyter_serving.bench.errors import BenchError, error_message
from jupyter_serving.bench.llm_runner import DEFAULT_LLM_DURATION_S, DEFAULT_MAX_TOKENS, DEFAULT_PROMPT_TOKENS
from jupyter_serving.bench.options import DEFAULT_CONCURRENCY, DEFAULT_WARMUP_S, parse_levels

STYLE = {"description_width": "initial"}


def _output(mime: str, data: str, text: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {mime: data, "text/plain": text}}


def _number(description: str, value: float, width: str, integer: bool = False, low: float = 0.0):
    kind = widgets.BoundedIntText if integer else widgets.BoundedFloatText
    return kind(value=value, min=low, max=10_000_000, description=description, style=STYLE,
                layout=widgets.Layout(width=width))


class LlmBenchPanel(widgets.VBox):
    """Benchmark LLM endpoint `name` by streaming (client: an `api.ServingClient`, or a function
    returning one) and apply the provisioned-throughput sizing."""

    running = Bool(False, help="a benchmark is running")
    applying = Bool(False, help="an Apply is running")
    steps_done = Int(0, help="levels finished in the current run")

    def __init__(self, name: str, client: Any = None, *, entity: str | None = None,
                 concurrency: Any = DEFAULT_CONCURRENCY, duration: float = DEFAULT_LLM_DURATION_S,
                 warmup: float = DEFAULT_WARMUP_S, prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
                 max_tokens: int = DEFAULT_MAX_TOKENS, custom_inputs: dict | None = None,
                 target_rps: float | None = None, target_ttft_ms: float | None = None,
                 target_tpot_ms: float | None = None, **kwargs: Any):
        import json

        self.name, self.entity, self.warmup = name, entity, float(warmup)
        self._client = client
        self.frame = self.recommendation = self.result = self.error = self.chart_png = None
        self.steps: list = []
        self._status = None
        self._blocked: str | None = None
        self._job = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._apply_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.concurrency = widgets.Text(value=",".join(map(str, parse_levels(concurrency))), placeholder="1,2,4,8",
                                        description="Concurrency levels", style=STYLE,
                                        layout=widgets.Layout(width="250px"))
        self.duration = widgets.BoundedFloatText(value=float(duration), min=0.5, max=3600.0, step=1.0,
                                                 description="Seconds per level", style=STYLE,
                                                 layout=widgets.Layout(width="190px"))
        self.prompt_tokens = _number("Prompt tokens", int(prompt_tokens), "170px", integer=True, low=1)
        self.max_tokens = _number("Max tokens", int(max_tokens), "160px", integer=True, low=1)
        self.custom_inputs = widgets.Text(value=json.dumps(custom_inputs) if custom_inputs else "",
                                          description="custom_inputs (JSON)", style=STYLE, placeholder="optional",
                                          layout=widgets.Layout(width="420px"))
        self.target_rps = _number("Target req/s (0: none)", float(target_rps or 0.0), "210px")
        self.target_ttft_ms = _number("TTFT p90 ≤ ms", float(target_ttft_ms or 0.0), "170px")
        self.target_tpot_ms = _number("TPOT p90 ≤ ms", float(target_tpot_ms or 0.0), "170px")
        self._build_controls()
        for box in (self.target_rps, self.target_ttft_ms, self.target_tpot_ms):
            box.observe(self._targets_changed, "value")
        super().__init__(children=[
            widgets.HBox([self.concurrency, self.duration, self.prompt_tokens, self.max_tokens]),
            widgets.HBox([self.target_rps, self.target_ttft_ms, self.target_tpot_ms]), self.custom_inputs,
            widgets.HBox([self.run_button, self.stop_button, self.apply_button, self.apply_reason],
                         layout=widgets.Layout(align_items="center")),
            widgets.HBox([self.progress, self.status]), self.chart, self.results, self.card], **kwargs)
        self._update_apply()

    def _build_controls(self) -> None:
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play",
                                         tooltip="stream-benchmark the endpoint in the background")
        self.stop_button = widgets.Button(description="Stop", button_style="warning", icon="stop", disabled=True,
                                          tooltip="end the current level and stop")
        self.apply_button = widgets.Button(description="Apply", button_style="success", icon="check", disabled=True)
        self.apply_reason = widgets.HTML(value="")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="Progress", style=STYLE,
                                              layout=widgets.Layout(width="60%"))
        self.status = widgets.HTML(value="Set the inputs and press Run.")
        self.chart = widgets.Output(layout=widgets.Layout(min_height="40px"))
        self.results = widgets.Output()
        self.card = widgets.HTML(value="")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.apply_button.on_click(lambda _: self.apply())

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def client(self):
        if callable(self._client) and not hasattr(self._client, "get"):
            self._client = self._client()
        if self._client is None:
            from jupyter_serving import api

            self._client = api.get_client()
        return self._client

    def targets(self) -> dict[str, float | None]:
        return {"rps": self.target_rps.value or None, "ttft_ms": self.target_ttft_ms.value or None,
                "tpot_ms": self.target_tpot_ms.value or None}

    def _say(self, message: str, kind: str = "") -> None:
        color = {"error": "#b42318", "warning": "#a15c00", "ok": "#1a7f37"}.get(kind, "inherit")
        self.status.value = f"<span style='color:{color}'>{html.escape(message)}</span>"

    def _show(self) -> None:
        """The table and chart of the levels so far."""
        from jupyter_serving.bench.llm_report import llm_chart_title, llm_table, render_llm_png

        shown = llm_table(self.frame)
        self.results.outputs = (_output("text/html", shown.to_html(), shown.to_string()),)
        t = self.targets()
        title = llm_chart_title(self.name, self.frame, self.duration.value, None, self.prompt_tokens.value,
                                self.max_tokens.value)
        self.chart_png = render_llm_png(title, self.frame, target_ttft_ms=t["ttft_ms"], target_tpot_ms=t["tpot_ms"],
                                        target_rps=t["rps"])
        import base64

        self.chart.outputs = (_output("image/png", base64.b64encode(self.chart_png).decode("ascii"),
                                      "<TTFT, ITL and token throughput chart>"),)

    def apply_blocked(self) -> str | None:
        """Why Apply cannot run now (None: it can)."""
        if self.running:
            return "Wait for the benchmark to finish."
        if self.applying:
            return "Applying…"
        if self._blocked is not None:
            return self._blocked
        if self.recommendation is None:
            return ("Set a target requests/s for a recommendation to apply." if self.frame is not None
                    else "Run the benchmark with a target requests/s to get a recommendation to apply.")
        return None

    def _update_apply(self) -> None:
        reason = self.apply_blocked()
        self.apply_button.disabled = reason is not None
        self.apply_button.tooltip = reason or "set the model units as recommended and wait until READY"
        quiet = reason is None or self.running or self.applying
        self.apply_reason.value = "" if quiet else f"<span style='color:#555'>{html.escape(reason)}</span>"

    def _recommend(self, applied: str | None = None) -> None:
        from jupyter_serving.bench.llm_endpoint import current_units
        from jupyter_serving.bench.llm_notebook import recommend_from
        from jupyter_serving.bench.llm_report import pt_recommendation_html

        notes: list[str] = []
        units = current_units(self._status, self.entity) if self._status is not None else None
        self.recommendation = recommend_from(self.frame, self.targets(), units, notes)
        if self.result is not None:
            self.result.recommendation, self.result.targets = self.recommendation, self.targets()
        note = "".join(f"<div style='color:#555'>{html.escape(n)}</div>" for n in notes)
        self.card.value = note + pt_recommendation_html(self.recommendation, applied=applied)
        self._update_apply()

    def _targets_changed(self, change) -> None:
        if not self.running and self.frame is not None and len(self.frame):
            self._recommend()
            self._show()

    # -- actions (return at once; the work runs in threads) ------------------------------------------

    def run(self) -> None:
        """Start a run with the current inputs (the Run button)."""
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
        self.error = self.frame = self.result = self.recommendation = self._job = None
        self.steps, self.steps_done = [], 0
        self._stop = threading.Event()
        self.run_button.disabled = self.apply_button.disabled = True
        self.stop_button.disabled = False
        self.progress.bar_style, self.progress.max, self.progress.value = "", float(len(levels)), 0.0
        self.card.value = ""
        self.results.outputs = ()
        self._say("Starting…")
        self._thread = threading.Thread(target=self._work, args=(levels,), daemon=True,
                                        name="jupyter-serving-llm-bench-widget")
        self._thread.start()

    def stop(self) -> None:
        """End the current level and run no further (the Stop button)."""
        self._stop.set()
        if self._job is not None:
            self._job.stop()
        if self.running:
            self.stop_button.disabled = True
            self._say("Stopping: the streams in flight are cut…", "warning")

    def apply(self) -> None:
        """Set the model units as recommended, in the background (the Apply button)."""
        with self._lock:
            if self.apply_blocked() is not None:
                return
            self.applying = True
        self.apply_button.disabled = self.run_button.disabled = True
        self._apply_thread = threading.Thread(target=self._apply_work, daemon=True,
                                              name="jupyter-serving-llm-bench-apply")
        self._apply_thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running benchmark and Apply; True when both are finished."""
        return join_all((self._thread, self._apply_thread), timeout)

    # -- background work -----------------------------------------------------------------------------

    def _work(self, levels: list[int]) -> None:
        from jupyter_serving.bench.endpoint import check_endpoint, host_and_token
        from jupyter_serving.bench.llm_endpoint import not_pt_reason, resolve_custom_inputs

        try:
            self._say("Reading the endpoint…")
            inputs = resolve_custom_inputs(self.custom_inputs.value)
            self._status = check_endpoint(self.client, self.name, self.entity)
            self._blocked = not_pt_reason(self._status, self.name, self.entity)
            host, token = host_and_token(self.client)
            if self._stop.is_set():
                self.progress.bar_style = "warning"
                self._say("Stopped before the first level.", "warning")
                return
            self._sweep(host, token, levels, inputs)
            self._conclude(levels)
        except Exception as err:  # noqa: BLE001 - shown in the widget, kept in .error
            self.error = err
            self.progress.bar_style = "danger"
            self._say(error_message(err), "error")
        finally:
            self.run_button.disabled = False
            self.stop_button.disabled = True
            self.running = False
            self._update_apply()

    def _on_step(self, step) -> None:  # the load generator's thread
        from jupyter_serving.bench.llm_results import to_llm_frame

        self.steps.append(step)
        self.frame = to_llm_frame(list(self.steps))
        self.steps_done = len(self.steps)
        self.progress.value = float(len(self.steps))
        self._show()

    def _sweep(self, host: str, token: str | None, levels: list[int], inputs: dict | None) -> None:
        from jupyter_serving.bench.llm_runner import llm_sweep
        from jupyter_serving.bench.runner import BenchmarkJob

        t, duration = self.targets(), float(self.duration.value)
        self._job = job = BenchmarkJob(
            llm_sweep, host, token, self.name, concurrency=levels, prompt_tokens=int(self.prompt_tokens.value),
            max_tokens=int(self.max_tokens.value), custom_inputs=inputs, entity=self.entity, duration=duration,
            warmup=self.warmup, targets={"ttft_ms": t["ttft_ms"], "tpot_ms": t["tpot_ms"]}, on_step=self._on_step)
        job.start()
        if self._stop.is_set():
            job.stop()
        started, seen = time.monotonic(), 0
        while not job.wait(0.2):
            if len(self.steps) != seen:
                seen, started = len(self.steps), time.monotonic()
            if not self._stop.is_set() and seen < len(levels):
                self.progress.value = seen + min((time.monotonic() - started) / (duration + self.warmup), 0.95)
                self._say(f"Level {seen + 1}/{len(levels)}: concurrency {levels[seen]} "
                          f"({duration:g} s after {self.warmup:g} s warm-up)…")
        job.result()

    def _conclude(self, levels: list[int]) -> None:
        from jupyter_serving.bench.llm_notebook import LlmBenchResult
        from jupyter_serving.bench.llm_results import to_llm_frame

        self.frame = to_llm_frame(self.steps)
        stopped = self._stop.is_set() or bool(len(self.frame) and self.frame["interrupted"].any())
        self.result = LlmBenchResult(endpoint=self.name, frame=self.frame, steps=list(self.steps), entity=self.entity,
                                     duration=float(self.duration.value), prompt_tokens=int(self.prompt_tokens.value),
                                     max_tokens=int(self.max_tokens.value), targets=self.targets(),
                                     interrupted=stopped, apply_blocked=self._blocked, client=self.client,
                                     _png=self.chart_png)
        self._recommend()
        if stopped:
            self.progress.bar_style = "warning"
            self._say(f"Stopped after {len(self.frame)} of {len(levels)} level(s).", "warning")
        else:
            self.progress.value, self.progress.bar_style = self.progress.max, "success"
            self._say(f"Done: {len(self.frame)} level(s).", "ok")

    def _apply_work(self) -> None:
        units = self.recommendation.units
        try:
            self._say(f"Applying provisioned_model_units={units}…")
            status = self.result.apply(self.client, on_progress=lambda s, elapsed: self._say(
                f"Applying provisioned_model_units={units}: {s.progress_line(elapsed)}"))
            done = f"Applied provisioned_model_units={units}: endpoint '{self.name}' is {status.state}."
            self._status = status
            self._recommend(applied=done)
            self._say(done, "ok")
        except Exception as err:  # noqa: BLE001 - shown in the widget, kept in .error
            self.error = err
            self._say(f"Apply failed: {error_message(err)}", "error")
        finally:
            self.run_button.disabled = self.running
            self.applying = False
            self._update_apply()

__all__ = ["LlmBenchPanel"]
