"""LLM benchmarks from a notebook: `run_llm_bench` (what `%serve bench NAME --llm` calls) and
`LlmBenchResult`, over `api.ServingClient`.

    from jupyter_serving.bench.llm_notebook import run_llm_bench
    res = run_llm_bench(client, "my-llm", concurrency=[1, 2, 4, 8], prompt_tokens=128, max_tokens=128,
                        target_rps=5, target_ttft_ms=500, target_tpot_ms=50)
    frame, advice = res               # the levels (DataFrame) and the PtRecommendation
    res.apply()                       # provisioned_model_units as advised (PT endpoints), until READY

Every request streams; metrics follow vLLM's definitions (see `llm_stats`). Progress, the chart and
the background run (`BenchRun`) are the classic benchmark's (`notebook`, `live`, `background`).
"""
from __future__ import annotations

import html
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_serving.bench.endpoint import check_endpoint, host_and_token
from jupyter_serving.bench.errors import BenchError
from jupyter_serving.bench.live import LiveDisplay
from jupyter_serving.bench.llm_endpoint import (
    apply_pt,
    current_units,
    not_pt_reason,
    resolve_custom_inputs,
    whole_number,
)
from jupyter_serving.bench.llm_report import (
    llm_chart_title,
    llm_table,
    pt_recommendation_html,
    render_llm_png,
    target_output_tps,
)
from jupyter_serving.bench.llm_runner import DEFAULT_LLM_DURATION_S, DEFAULT_MAX_TOKENS, DEFAULT_PROMPT_TOKENS
from jupyter_serving.bench.options import DEFAULT_CONCURRENCY, DEFAULT_WARMUP_S, parse_levels, parse_rates, positive


@dataclass(eq=False)
class LlmBenchResult:
    """What `run_llm_bench` returns: the levels (`frame`, and `steps` with every stream's metrics),
    the provisioned-throughput `recommendation` (None without a target requests/s), notes and the
    chart. Unpacks as (frame, recommendation)."""

    endpoint: str
    frame: Any
    steps: list = field(default_factory=list)
    recommendation: Any = None
    mode: str = "closed"
    entity: str | None = None
    duration: float | None = None
    requests: int | None = None
    prompt_tokens: int | None = None
    max_tokens: int | None = None
    targets: dict[str, float | None] = field(default_factory=dict)  # rps, ttft_ms, tpot_ms
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    apply_blocked: str | None = None     # why Apply cannot run (not a PT endpoint...)
    applied: str | None = None
    client: Any = field(default=None, repr=False)
    _png: bytes | None = field(default=None, repr=False)

    def __iter__(self):
        yield self.frame
        yield self.recommendation

    @property
    def title(self) -> str:
        return llm_chart_title(self.endpoint, self.frame, self.duration, self.requests, self.prompt_tokens,
                               self.max_tokens)

    def figure(self):
        from jupyter_serving.bench import llm_plots

        t = self.targets
        return llm_plots.llm_figure(self.frame, title=self.title, target_ttft_ms=t.get("ttft_ms"),
                                    target_tpot_ms=t.get("tpot_ms"),
                                    target_output_tps=target_output_tps(t.get("rps"), self.frame))

    def png(self) -> bytes:
        if self._png is None:
            self._png = render_llm_png(self.title, self.frame, target_ttft_ms=self.targets.get("ttft_ms"),
                                       target_tpot_ms=self.targets.get("tpot_ms"), target_rps=self.targets.get("rps"))
        return self._png

    def save_chart(self, path) -> None:
        with open(path, "wb") as fh:
            fh.write(self.png())

    def apply(self, client=None, *, entity: str | None = None, wait: bool = True, timeout: float = 1200.0,
              on_progress=None):
        """Set the provisioned-throughput entity's model units as recommended; wait until READY."""
        if self.recommendation is None:
            raise BenchError("This benchmark has no provisioned-throughput recommendation to apply",
                             "Run it with a target (--target-rps R).")
        client = client or self.client
        if client is None:
            from jupyter_serving import api

            client = api.get_client()
        status = apply_pt(client, self.endpoint, self.recommendation, entity=entity or self.entity, wait=wait,
                          timeout=timeout, on_progress=on_progress)
        self.applied = (f"Applied provisioned_model_units={self.recommendation.units}: endpoint "
                        f"'{self.endpoint}' is {status.state}.")
        return status

    def apply_hint(self) -> str:
        return ".apply()" if self.apply_blocked is None else f"no .apply(): {self.apply_blocked}"

    def summary(self) -> str:
        steps = len(self.frame) if self.frame is not None else 0
        text = f"LLM benchmark of '{self.endpoint}': {steps} level(s)"
        if self.interrupted:
            text += " (stopped early)"
        rec = self.recommendation
        if rec is not None:
            text += f"; {rec.units} model unit(s) for {rec.target_rps:g} requests/s ({rec.needed_tokens_per_s:.0f} tokens/s)"
        return text

    def __repr__(self) -> str:
        parts = [self.summary()]
        if self.frame is not None and len(self.frame):
            parts.append(llm_table(self.frame).to_string())
        parts += [f"Note: {n}" for n in self.notes]
        if self.recommendation is not None:
            parts.append(str(self.recommendation))
        if self.applied:
            parts.append(self.applied)
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        import base64

        parts = [f"<div><b>{html.escape(self.summary())}</b></div>"]
        parts += [f"<div style='color:#a15c00'>{html.escape(n)}</div>" for n in self.notes]
        if self.frame is not None and len(self.frame):
            png = base64.b64encode(self.png()).decode("ascii")
            parts.append(f"<img alt='TTFT, ITL and token throughput' src='data:image/png;base64,{png}'/>")
            parts.append(llm_table(self.frame).to_html())
        how = "<code>.apply()</code>" if self.apply_blocked is None else "Apply (unavailable: see the note)"
        parts.append(pt_recommendation_html(self.recommendation, applied=self.applied, how=how))
        return "".join(parts)


def recommend_from(frame, targets: Mapping[str, float | None], units: int | None, notes: list[str]):
    """The PT recommendation of a closed-loop run, or None (and a note saying why)."""
    from jupyter_serving.bench.llm_sizing import recommend_pt

    if not targets.get("rps"):
        notes.append("Give a target requests/s (--target-rps R) for a provisioned-throughput recommendation.")
        return None
    if frame is None or not len(frame):
        return None
    try:
        return recommend_pt(frame, targets["rps"], ttft_ms=targets.get("ttft_ms"), tpot_ms=targets.get("tpot_ms"),
                            current_units=units)
    except ValueError as err:
        notes.append(f"No recommendation: {err}")
        return None


POLL_S = 0.1


class _Charts:
    """The steps as the load generator finishes them, and the chart so far."""

    def __init__(self, name: str, live: LiveDisplay, title, targets: dict):
        self.name, self.live, self.title, self.targets = name, live, title, targets
        self.steps: list = []
        self.finished: list[tuple[Any, bytes | None]] = []

    def on_step(self, step) -> None:  # the load generator's thread
        from jupyter_serving.bench.llm_results import to_llm_frame

        self.steps.append(step)
        frame = to_llm_frame(list(self.steps))
        png = render_llm_png(self.title(frame), frame, target_ttft_ms=self.targets.get("ttft_ms"),
                             target_tpot_ms=self.targets.get("tpot_ms"),
                             target_rps=self.targets.get("rps")) if self.live.rich else None
        self.finished.append((step, png))

    @property
    def last_png(self) -> bytes | None:
        return self.finished[-1][1] if self.finished else None


def _checked(prompt_tokens, max_tokens, duration, requests, targets: dict) -> tuple[int, int, float | None, int | None]:
    prompt = whole_number(prompt_tokens if prompt_tokens is not None else DEFAULT_PROMPT_TOKENS, "--prompt-tokens")
    answer = whole_number(max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS, "--max-tokens")
    requests = whole_number(requests, "--requests")
    duration = positive(duration, "duration")
    if duration is None and requests is None:
        duration = DEFAULT_LLM_DURATION_S
    for key, what in (("rps", "target requests/s"), ("ttft_ms", "TTFT target (ms)"), ("tpot_ms", "TPOT target (ms)")):
        targets[key] = positive(targets.get(key), what)
    return prompt, answer, duration, requests


def run_llm_bench(client, name: str, *, concurrency: Any = DEFAULT_CONCURRENCY, rate: Any = None,
                  prompt_tokens: int | None = None, max_tokens: int | None = None, custom_inputs: Any = None,
                  duration: float | None = None, requests: int | None = None, warmup: float = DEFAULT_WARMUP_S,
                  target_rps: float | None = None, target_ttft_ms: float | None = None,
                  target_tpot_ms: float | None = None, apply: bool = False, entity: str | None = None,
                  openai: bool = False, arrival: str = "poisson", timeout: float = 60.0, output: str | None = None,
                  user_ns: dict | None = None, namespace: Mapping[str, Any] | None = None, show: bool = True,
                  stop: threading.Event | None = None, background: bool = False):
    """Stream-benchmark endpoint `name` and size its provisioned throughput.

    Closed loop over `concurrency` levels (default), or open loop at `rate` requests/s (one or
    several; Poisson arrivals, latency from the scheduled send time). Each level: `duration` seconds
    (default 10) after `warmup`, or `requests` requests. Prompts of `prompt_tokens` words, answers
    capped at `max_tokens`; `custom_inputs` (dict, JSON, `$var`) goes in every body. With
    `target_rps` (and `target_ttft_ms` / `target_tpot_ms`) a closed-loop run carries a
    `PtRecommendation`; `apply` applies it at the end (provisioned-throughput endpoints only).
    `output`, `show`, `stop`, `background`: as `notebook.run_bench`."""
    from jupyter_serving.bench.llm_runner import llm_sweep
    from jupyter_serving.bench.notebook import _check_output
    from jupyter_serving.bench.runner import BenchmarkJob

    targets = {"rps": target_rps, "ttft_ms": target_ttft_ms, "tpot_ms": target_tpot_ms}
    prompt, answer, duration, requests = _checked(prompt_tokens, max_tokens, duration, requests, targets)
    _check_output(output, user_ns)
    open_mode = rate is not None
    levels = parse_rates(rate) if open_mode else parse_levels(concurrency)
    inputs = resolve_custom_inputs(custom_inputs, namespace if namespace is not None else user_ns)
    status = check_endpoint(client, name, entity)
    blocked = not_pt_reason(status, name, entity)
    notes = [f"Apply: {blocked}"] if apply and blocked else []
    host, token = host_and_token(client)

    live = LiveDisplay(show)
    fields = {"endpoint": name, "mode": "open" if open_mode else "closed", "entity": entity, "duration": duration,
              "requests": requests, "prompt_tokens": prompt, "max_tokens": answer, "targets": targets}
    charts = _Charts(name, live, lambda frame: llm_chart_title(name, frame, duration, requests, prompt, answer), targets)
    job = BenchmarkJob(llm_sweep, host, token, name, on_step=charts.on_step,
                       **({"rate": levels} if open_mode else {"concurrency": levels}), prompt_tokens=prompt,
                       max_tokens=answer, custom_inputs=inputs, entity=entity, openai=openai, duration=duration,
                       requests=requests, warmup=warmup, timeout=timeout, arrival=arrival,
                       targets={"ttft_ms": targets["ttft_ms"], "tpot_ms": targets["tpot_ms"]})
    unit = "rate" if open_mode else "concurrency"
    per = f"{requests} requests" if requests else f"{duration:g} s"
    for note in notes:
        live.text(f"Note: {note}")
    live.text(f"Benchmarking '{name}' (streaming): step 1/{len(levels)} ({unit} {levels[0]:g}, {per})…")
    background = background and live.rich
    stop = stop if stop is not None or not background else threading.Event()

    def finish() -> LlmBenchResult | None:
        return _finish(job, charts, levels, unit, stop, notes, fields, client, status, blocked, apply, live,
                       output, user_ns, background)

    if background:
        from jupyter_serving.bench.background import BenchRun

        return BenchRun(name, finish, stop, live, output, user_ns).start()
    return finish()


def _report(charts: _Charts, job, shown: int, levels: list, unit: str) -> int:
    done = list(charts.finished)
    for index in range(shown, len(done)):
        step, png = done[index]
        if png is not None:
            charts.live.chart(png)
        following = (f"; step {index + 2}/{len(levels)} ({unit} {levels[index + 1]:g})…"
                     if index + 1 < len(levels) and not job.done else "")
        charts.live.text(f"'{charts.name}' step {index + 1}/{len(levels)}: {step.describe()}{following}")
    return len(done)


def _follow(job, charts: _Charts, levels: list, unit: str, stop: threading.Event | None) -> bool:
    """Report the job's steps until it ends; True if it was stopped (`stop`, Ctrl-C)."""
    interrupted, shown = False, 0
    job.start()
    try:
        while not job.wait(POLL_S):
            if stop is not None and stop.is_set() and not interrupted:
                job.stop()
                interrupted = True
            shown = _report(charts, job, shown, levels, unit)
    except KeyboardInterrupt:
        interrupted = True
        job.stop()
        charts.live.text(f"Stopping the benchmark of '{charts.name}'…")
        job.wait()
    _report(charts, job, shown, levels, unit)
    return interrupted


def _finish(job, charts: _Charts, levels, unit, stop, notes, fields, client, status, blocked, apply, live, output,
            user_ns, background):
    """Follow the job to its end; the result, its recommendation (and Apply, when asked), delivered."""
    from jupyter_serving.bench.llm_results import to_llm_frame
    from jupyter_serving.bench.notebook import _deliver, _deliver_in_place, _frame_of

    interrupted = _follow(job, charts, levels, unit, stop)
    frame = _frame_of(job)
    if frame is None or not len(frame):
        frame = to_llm_frame(job.steps)
    interrupted = interrupted or bool(len(frame) and frame["interrupted"].any())
    rec = (recommend_from(frame, fields["targets"], current_units(status, fields["entity"]), notes)
           if fields["mode"] == "closed" else None)
    result = LlmBenchResult(frame=frame, steps=list(job.steps), recommendation=rec, interrupted=interrupted,
                            notes=notes, apply_blocked=blocked, client=client, _png=charts.last_png, **fields)
    if apply and rec is not None and blocked is None and not interrupted:
        live.text(f"Applying provisioned_model_units={rec.units} to '{fields['endpoint']}'…")
        result.apply(client, on_progress=lambda s, elapsed: live.text(
            f"Applying provisioned_model_units={rec.units}: {s.progress_line(elapsed)}"))
    if background:
        return _deliver_in_place(result, live, output)
    return _deliver(result, live, output, user_ns)


__all__ = ["LlmBenchResult", "recommend_from", "run_llm_bench"]
