"""Benchmarks from a notebook: `run_bench`, what `%serve bench` calls, over `api.ServingClient`.

    from jupyter_serving import api
    from jupyter_serving.bench.notebook import run_bench
    result = run_bench(api.get_client(), "my-endpoint", concurrency=[1, 2, 4, 8], duration=5,
                       target_qps=100, p99_ms=250)
    frame, advice = result                 # the steps (DataFrame) and the Recommendation
    result.apply()                         # resize the endpoint as advised, wait until READY

The magic parses its line with `add_bench_arguments` and calls `run_bench_args`. The pieces live
in `options` (parsing), `endpoint` (the client side), `report` (tables, card, chart), `live`
(progress) and `bench_result` (`BenchResult`); their public names are importable from here too.

Importing this module is light: pandas, matplotlib and IPython are imported when used.
"""
from __future__ import annotations

import argparse
import threading
from collections.abc import Mapping
from typing import Any

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
from jupyter_serving.bench.errors import BenchError, engine_error
from jupyter_serving.bench.live import LiveDisplay, report_steps
from jupyter_serving.bench.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DURATION_S,
    DEFAULT_WARMUP_S,
    parse_levels,
    parse_rates,
    positive,
)
from jupyter_serving.bench.report import recommendation_html, render_png, table
from jupyter_serving.core.errors import ServingError

POLL_S = 0.1


def _checked(target_qps, p99_ms, duration, arrival: str, output: str | None, user_ns: dict | None):
    """The checked target QPS, p99 target and duration (one-line errors for bad options)."""
    target_qps, p99_ms = positive(target_qps, "target QPS"), positive(p99_ms, "p99 target (ms)")
    duration = positive(duration, "duration") or DEFAULT_DURATION_S
    _check_output(output, user_ns)
    if arrival not in ("poisson", "uniform"):
        raise BenchError(f"arrival must be 'poisson' or 'uniform', got {arrival!r}", "")
    return target_qps, p99_ms, duration


def _check_output(output: str | None, user_ns: dict | None) -> None:
    if output is not None and (not output.isidentifier() or user_ns is None):
        raise BenchError(f"-o {output}: not a valid variable name" if not output.isidentifier()
                         else "-o needs a namespace to store the result in", "Use a Python identifier.")


class _Charts:
    """Collects the steps as the load generator finishes them and draws the chart so far."""

    def __init__(self, name: str, live: LiveDisplay, duration: float, target_qps: float | None,
                 p99_ms: float | None):
        self.name, self.live, self.duration = name, live, duration
        self.target_qps, self.p99_ms = target_qps, p99_ms
        self.steps: list = []
        self.finished: list[tuple[Any, bytes | None]] = []  # (step, chart) once the chart is drawn

    def on_step(self, step) -> None:  # the load generator's thread, between steps
        from jupyter_serving.bench.runner import to_frame

        self.steps.append(step)
        png = render_png(self.name, to_frame(list(self.steps)), duration=self.duration,
                         target_qps=self.target_qps, p99_ms=self.p99_ms) if self.live.rich else None
        self.finished.append((step, png))

    @property
    def last_png(self) -> bytes | None:
        return self.finished[-1][1] if self.finished else None


def _follow(job, charts: _Charts, levels: list, unit: str, stop: threading.Event | None) -> bool:
    """Report the job's steps until it ends; True if it was stopped (`stop`, Ctrl-C)."""
    live, name, duration = charts.live, charts.name, charts.duration
    interrupted = False
    shown = 0
    job.start()
    try:
        while not job.wait(POLL_S):
            if stop is not None and stop.is_set() and not interrupted:
                job.stop()
                interrupted = True
            shown = report_steps(live, job, charts.finished, shown, levels, unit, duration, name)
    except KeyboardInterrupt:
        interrupted = True
        job.stop()
        live.text(f"Stopping the benchmark of '{name}'…")
        job.wait()
    report_steps(live, job, charts.finished, shown, levels, unit, duration, name)
    return interrupted


def _frame_of(job):
    """The job's DataFrame (what was done, if it stopped early); engine errors as one-line errors."""
    from jupyter_serving.bench.runner import to_frame

    try:
        frame = job.result()
    except ServingError:
        raise
    except Exception as err:  # noqa: BLE001 - engine errors become one-line ServingErrors
        raise engine_error(err) from None
    return frame if frame is not None else to_frame(job.steps)


def _recommend(frame, target_qps: float | None, p99_ms: float | None, headroom: float | None,
               idle_traffic: bool, notes: list[str]):
    """The sizing recommendation of a closed-loop run, or None (and a note saying why)."""
    from jupyter_serving.bench.sizing import DEFAULT_HEADROOM, recommend

    if target_qps is None:
        notes.append("Give a target QPS (--target-qps Q) for a sizing recommendation.")
        return None
    if not len(frame):
        return None
    try:
        return recommend(frame, target_qps, p99_target_ms=p99_ms, headroom=headroom or DEFAULT_HEADROOM,
                         idle_traffic=idle_traffic)
    except ValueError as err:
        notes.append(f"No recommendation: {err}")
        return None


def run_bench(client, name: str, *, concurrency: Any = DEFAULT_CONCURRENCY,
              duration: float = DEFAULT_DURATION_S, warmup: float = DEFAULT_WARMUP_S,
              target_qps: float | None = None, p99_ms: float | None = None, rate: Any = None,
              arrival: str = "poisson", entity: str | None = None, payload: Any = None,
              headroom: float | None = None, idle_traffic: bool = False, timeout: float = 30.0,
              output: str | None = None, user_ns: dict | None = None,
              namespace: Mapping[str, Any] | None = None, show: bool = True,
              stop: threading.Event | None = None, background: bool = False):
    """Benchmark endpoint `name` and size it.

    Closed loop (default): one step per concurrency level, `duration` seconds each after `warmup`;
    with `target_qps` (and optionally `p99_ms`) the result carries a `Recommendation`. With
    `rate` (requests/s, one or several): open-loop runs at those rates instead (no recommendation),
    with Poisson arrivals (`arrival="uniform"`: evenly spaced).
    `payload`: DataFrame, dict, JSON text, `$var` (looked up in `namespace`, default `user_ns`);
    default: the endpoint's schema example. `entity`: send to one served entity (Apply then
    resizes that one).
    `show`: live progress and chart (display handles in Jupyter, printed lines elsewhere).
    `output`: store the BenchResult in `user_ns[output]` and return None (the magic's `-o VAR`).
    Ctrl-C / interrupt kernel (or setting `stop`) ends the run early with the steps done so far.
    `background` (in a kernel): run off the kernel thread, return a `BenchRun` at once (see `background`).
    """
    from jupyter_serving.bench.runner import BenchmarkJob, open_loop, sweep

    target_qps, p99_ms, duration = _checked(target_qps, p99_ms, duration, arrival, output, user_ns)
    open_mode = rate is not None
    levels = parse_rates(rate) if open_mode else parse_levels(concurrency)
    status = check_endpoint(client, name, entity)
    notes = [] if open_mode else limit_notes(levels, entity_limit(status, entity))
    body = resolve_payload(client, name, payload, entity, namespace if namespace is not None else user_ns)
    host, token = host_and_token(client)

    live = LiveDisplay(show)
    charts = _Charts(name, live, duration, target_qps, p99_ms)
    extra = {"arrival": arrival} if open_mode else {}
    job = BenchmarkJob(open_loop if open_mode else sweep, host, token, name, body, levels,
                       on_step=charts.on_step, duration=duration, warmup=warmup, entity=entity,
                       timeout=timeout, **extra)
    unit = "rate" if open_mode else "concurrency"
    for note in notes:
        live.text(f"Note: {note}")
    live.text(f"Benchmarking '{name}': step 1/{len(levels)} ({unit} {levels[0]:g}, {duration:g} s)…")
    background = background and live.rich
    stop = stop if stop is not None or not background else threading.Event()

    def finish() -> BenchResult | None:
        interrupted = _follow(job, charts, levels, unit, stop)
        result = _result(job, interrupted, notes, recommend=not open_mode, headroom=headroom,
                         idle_traffic=idle_traffic, client=client, png=charts.last_png,
                         endpoint=name, mode="open" if open_mode else "closed", entity=entity,
                         duration=duration, target_qps=target_qps, p99_ms=p99_ms,
                         entity_names=list(status.entity_names))
        return _deliver_in_place(result, live, output) if background else _deliver(result, live, output, user_ns)

    if background:
        from jupyter_serving.bench.background import BenchRun

        return BenchRun(name, finish, stop, live, output, user_ns).start()
    return finish()


def _result(job, interrupted: bool, notes: list[str], *, recommend: bool, headroom: float | None,
            idle_traffic: bool, client, png: bytes | None, **fields: Any) -> BenchResult:
    """The BenchResult of a finished job (with the recommendation of a closed-loop run)."""
    frame = _frame_of(job)
    interrupted = interrupted or bool(len(frame) and frame["interrupted"].any())
    recommendation = (_recommend(frame, fields["target_qps"], fields["p99_ms"], headroom, idle_traffic, notes)
                      if recommend else None)
    return BenchResult(frame=frame, recommendation=recommendation, interrupted=interrupted, notes=notes,
                       client=client, _png=png, **fields)


def _deliver_in_place(result: BenchResult, live: LiveDisplay, output: str | None) -> BenchResult:
    """A background run's end: the result (chart, table, recommendation) in its live display."""
    stored = f" Stored in '{output}'." if output is not None else ""
    live.result(result, stored)
    return result


def _deliver(result: BenchResult, live: LiveDisplay, output: str | None, user_ns: dict | None):
    """Store the result in `user_ns[output]` (and return None), or return it."""
    if output is not None:
        user_ns[output] = result
        live.text(f"{result.summary()}. Stored in '{output}' (.frame, .recommendation, "
                  f"{result.apply_hint()}).")
        return None
    live.text(result.summary())
    live.clear_chart()  # the returned result shows the final chart
    return result


# --------------------------------------------------------------------------------------------------
# the magic's side: `%serve bench NAME [options]`

def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `%serve bench`, added to the magic's (non-exiting) parser."""
    parser.add_argument("name", help="the endpoint")
    parser.add_argument("--target-qps", type=float, metavar="Q", help="requests/s to size for")
    parser.add_argument("--p99-ms", type=float, metavar="L", help="p99 latency target in ms")
    parser.add_argument("--concurrency", "-c", nargs="+", default=["1,2,4,8"], metavar="C",
                        help="closed-loop concurrency levels: 1 2 4 8 or 1,2,4,8 (default)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--duration", "-d", type=float, metavar="S",
                        help=f"measured seconds per step (default {DEFAULT_DURATION_S:g}; --llm: 10)")
    length.add_argument("--requests", type=int, metavar="N", help="--llm: measured requests per step instead")
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, metavar="S",
                        help=f"unmeasured seconds before each step (default {DEFAULT_WARMUP_S:g})")
    parser.add_argument("--rate", nargs="+", metavar="R", help="open loop at R requests/s (or R1 R2) instead of a sweep")
    parser.add_argument("--arrival", choices=("poisson", "uniform"), default="poisson",
                        help="open loop: Poisson (default) or evenly spaced arrivals")
    parser.add_argument("--entity", metavar="E", help="benchmark (and resize) one served entity")
    parser.add_argument("--payload", metavar="$VAR|JSON", help="request body (default: the schema example)")
    parser.add_argument("--idle-traffic", action="store_true",
                        help="traffic has idle periods (lets sizing consider scale to zero)")
    parser.add_argument("-o", "--output", metavar="VAR", help="store the result in VAR, show no table")
    llm = parser.add_argument_group("LLM endpoints (--llm: every request streams; TTFT, ITL, TPOT, tokens/s)")
    llm.add_argument("--llm", action="store_true", help="benchmark a chat endpoint by streaming")
    llm.add_argument("--prompt-tokens", type=int, metavar="N", help="synthetic prompts of N words (default 128)")
    llm.add_argument("--max-tokens", type=int, metavar="N", help="max_tokens of each request (default 128)")
    llm.add_argument("--custom-inputs", metavar="$VAR|JSON", help="custom_inputs sent with every request")
    llm.add_argument("--openai", action="store_true",
                     help="the OpenAI-compatible route (/serving-endpoints/chat/completions) instead of /invocations")
    llm.add_argument("--target-rps", type=float, metavar="R", help="requests/s to size provisioned throughput for")
    llm.add_argument("--target-ttft-ms", type=float, metavar="T", help="TTFT target (p90, ms)")
    llm.add_argument("--target-tpot-ms", type=float, metavar="T", help="TPOT target (p90, ms)")
    llm.add_argument("--apply", action="store_true", help="apply the model units at the end (PT endpoints)")
    return parser


_LLM_ONLY = ("requests", "prompt_tokens", "max_tokens", "custom_inputs", "target_rps", "target_ttft_ms",
             "target_tpot_ms")
_CLASSIC_ONLY = {"target_qps": "--target-rps", "p99_ms": "--target-ttft-ms / --target-tpot-ms",
                 "payload": "--prompt-tokens / --custom-inputs"}


def _joined(value: Any) -> Any:
    """`--concurrency 1 2 4` and `--rate 5 10` as the "1 2 4" the option parsers read."""
    return " ".join(value) if isinstance(value, list) else value


def _check_mode_options(opts: argparse.Namespace) -> None:
    if getattr(opts, "llm", False):
        for dest, instead in _CLASSIC_ONLY.items():
            if getattr(opts, dest, None) is not None:
                raise BenchError(f"--{dest.replace('_', '-')} is for classic benchmarks", f"With --llm use {instead}.")
        return
    given = [d for d in _LLM_ONLY + ("apply", "openai") if getattr(opts, d, None) not in (None, False)]
    if given:
        raise BenchError(f"--{given[0].replace('_', '-')} is for LLM benchmarks", "Add --llm.")


def run_bench_args(client, opts: argparse.Namespace, user_ns: dict | None = None,
                   namespace: Mapping[str, Any] | None = None, show: bool = True,
                   background: bool = True):
    """`run_bench` from the options `add_bench_arguments` parsed (what `%serve bench` calls), or
    `llm_notebook.run_llm_bench` with `--llm`. `user_ns`: where `-o VAR` stores the result; `namespace`:
    where `--payload $var` is looked up (default `user_ns`; the magic passes its user + local namespace).
    In a Jupyter kernel it runs in the background (`background=False`: on the kernel thread) and
    returns a `BenchRun`."""
    _check_mode_options(opts)
    concurrency, rate = _joined(opts.concurrency), _joined(opts.rate)
    if getattr(opts, "llm", False):
        from jupyter_serving.bench.llm_notebook import run_llm_bench

        return run_llm_bench(client, opts.name, concurrency=concurrency, rate=rate, prompt_tokens=opts.prompt_tokens,
                             max_tokens=opts.max_tokens, custom_inputs=opts.custom_inputs, duration=opts.duration,
                             requests=opts.requests, warmup=opts.warmup, target_rps=opts.target_rps,
                             target_ttft_ms=opts.target_ttft_ms, target_tpot_ms=opts.target_tpot_ms,
                             apply=opts.apply, entity=opts.entity, openai=opts.openai, arrival=opts.arrival,
                             output=opts.output, user_ns=user_ns, namespace=namespace, show=show,
                             background=background)
    return run_bench(client, opts.name, concurrency=concurrency, duration=opts.duration,
                     warmup=opts.warmup, target_qps=opts.target_qps, p99_ms=opts.p99_ms, rate=rate,
                     arrival=opts.arrival, entity=opts.entity, payload=opts.payload,
                     idle_traffic=opts.idle_traffic, output=opts.output, user_ns=user_ns,
                     namespace=namespace, show=show, background=background)


__all__ = ["BenchError", "BenchResult", "DEFAULT_CONCURRENCY", "DEFAULT_DURATION_S", "DEFAULT_WARMUP_S",
           "add_bench_arguments", "apply_recommendation", "config_changes", "default_payload",
           "host_and_token", "parse_levels", "parse_rates", "recommendation_html", "render_png",
           "resolve_payload", "run_bench", "run_bench_args", "table"]
