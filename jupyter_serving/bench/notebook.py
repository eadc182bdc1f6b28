"""Benchmarks from a notebook: what `%serve bench` and `BenchmarkWidget` share, over `api.ServingClient`.

    from jupyter_serving import api
    from jupyter_serving.bench.notebook import run_bench
    result = run_bench(api.get_client(), "my-endpoint", concurrency=[1, 2, 4, 8], duration=5,
                       target_qps=100, p99_ms=250)
    frame, advice = result                 # the steps (DataFrame) and the Recommendation
    result.apply()                         # resize the endpoint as advised, wait until READY

The magic parses its line with `add_bench_arguments` and calls `run_bench_args`. Load goes
straight to the endpoint's invocation URL (the engine in `runner`), with the client's host and
bearer token; everything else (schema, status, updates) goes through the client.

Importing this module is light: pandas, matplotlib and IPython are imported when used.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import InvalidInputError, ServingError

DEFAULT_CONCURRENCY = (1, 2, 4, 8)
DEFAULT_DURATION_S = 5.0
DEFAULT_WARMUP_S = 1.0
POLL_S = 0.1

# Columns shown in tables (the DataFrame keeps every column).
TABLE_COLUMNS = ("concurrency", "target_rate", "qps", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
                 "successes", "rate_limited", "error_count", "failure_share", "client_saturated",
                 "interrupted")


class BenchError(InvalidInputError):
    """A benchmark that cannot run as asked (bad options, endpoint not ready, load refused)."""


# --------------------------------------------------------------------------------------------------
# options

def parse_levels(value: Any) -> list[int]:
    """Concurrency levels from "1,2,4,8", "1 2 4", an int or a list of ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [v for v in value.replace(",", " ").split() if v]
    else:
        items = list(value or [])
    levels = []
    for item in items:
        try:
            level = int(str(item).strip())
        except ValueError:
            raise BenchError(f"Concurrency level '{item}' is not an integer",
                             "Give levels like 1,2,4,8.") from None
        if level < 1:
            raise BenchError(f"Concurrency level {level} must be at least 1", "Give levels like 1,2,4,8.")
        levels.append(level)
    if not levels:
        raise BenchError("No concurrency levels given", "Give levels like 1,2,4,8.")
    return levels


def parse_rates(value: Any) -> list[float]:
    """Open-loop rates (requests/s) from "50,100", a number or a list of numbers."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [v for v in value.replace(",", " ").split() if v]
    else:
        items = list(value or [])
    rates = []
    for item in items:
        try:
            rate = float(str(item).strip())
        except ValueError:
            raise BenchError(f"Rate '{item}' is not a number", "Give requests/s like 50 or 50,100.") from None
        if not rate > 0 or not math.isfinite(rate):
            raise BenchError(f"Rate {item} must be a positive number of requests/s", "e.g. --rate 50.")
        rates.append(rate)
    if not rates:
        raise BenchError("No rate given", "Give requests/s like 50 or 50,100.")
    return rates


def _positive(value: Any, what: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BenchError(f"{what} must be a number, got {value!r}", "") from None
    if not number > 0 or not math.isfinite(number):
        raise BenchError(f"{what} must be positive, got {value!r}", "")
    return number


# --------------------------------------------------------------------------------------------------
# adapters over the API client (what api.ServingClient does not offer directly)

def host_and_token(client) -> tuple[str, str | None]:
    """The workspace URL and a bearer token for the load generator, from the client's SDK config
    (PAT, OAuth and the local backend all authenticate with `Authorization: Bearer ...`)."""
    host = (getattr(client, "host", None) or client.workspace.config.host or "").rstrip("/")
    headers = client.workspace.config.authenticate() or {}
    auth = headers.get("Authorization") or headers.get("authorization")
    if auth is None:
        return host, None
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise BenchError("The benchmark needs bearer-token authentication",
                         "Connect with a personal access token or OAuth (`%serve connect --profile NAME`).")
    return host, token


def default_payload(client, name: str, entity: str | None = None) -> dict:
    """A request body from the endpoint's OpenAPI schema (its example, params with typed defaults)."""
    from .. import api

    return api.request_template_from_openapi(client.openapi(name), entity)


def resolve_payload(client, name: str, payload: Any = None, entity: str | None = None,
                    user_ns: Mapping[str, Any] | None = None) -> Any:
    """What each request sends: the given DataFrame/dict/list/bytes; `$var` or a variable name
    from `user_ns`; a JSON string; or, with nothing given, the endpoint's schema example."""
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return default_payload(client, name, entity)
    if isinstance(payload, str):
        text = payload.strip()
        ref = text[1:] if text.startswith("$") else text
        if user_ns is not None and ref.isidentifier():
            if ref not in user_ns:
                raise BenchError(f"No variable named '{ref}' for the payload",
                                 "Define it first, or give a JSON body.")
            return user_ns[ref]
        try:
            return json.loads(text)
        except ValueError as err:
            raise BenchError(f"The payload is not valid JSON ({err})",
                             "Give a JSON body, a DataFrame/dict variable ($df), or nothing for the "
                             "schema's example.") from None
    return payload


def entity_limit(status, entity: str | None = None) -> int | None:
    """The concurrency the benchmarked entity (or, with several routed, all of them) provides."""
    from ..rules import entity_concurrency

    entities = status.entities
    if entity is not None:
        entities = [e for e in entities if e.get("name") == entity]
    else:
        routed = {k for k, v in status.traffic.items() if v}
        if routed:
            entities = [e for e in entities if e.get("name") in routed]
    total = 0
    for e in entities:
        try:
            total += entity_concurrency(e)[1]
        except (TypeError, ValueError, KeyError):
            return None
    return total or None


def check_endpoint(client, name: str, entity: str | None = None):
    """The endpoint's status, refusing to benchmark one that cannot answer."""
    status = client.get(name)
    if status.is_stopped:
        raise BenchError(f"Endpoint '{name}' is stopped", f"Start it with `%serve start {name}` first.")
    if not status.is_ready:
        raise BenchError(f"Endpoint '{name}' is {status.state}, not ready",
                         f"Wait until it is READY (`%serve status {name} --watch`).")
    if entity is not None and entity not in status.entity_names:
        raise BenchError(f"Endpoint '{name}' has no served entity '{entity}' (served entities: "
                         f"{', '.join(status.entity_names) or 'none'})", "Use one of those names.")
    return status


def limit_notes(levels: Iterable[int], limit: int | None) -> list[str]:
    above = [c for c in levels if limit is not None and c > limit]
    if not above:
        return []
    return [f"Concurrency {', '.join(map(str, above))} is above the {limit} concurrent requests the "
            f"endpoint provides: expect 429 responses there (the endpoint refusing load, not serving "
            f"it); sizing leaves such steps out."]


def config_changes(recommendation, custom: bool = False) -> dict:
    """`Recommendation.served_entity_config()` as `ServingClient.update_config` keyword arguments."""
    config = recommendation.served_entity_config(custom)
    kwargs: dict[str, Any] = {}
    if "workload_size" in config:
        kwargs["workload_size"] = config["workload_size"]
    if "min_provisioned_concurrency" in config:
        kwargs["min_concurrency"] = int(config["min_provisioned_concurrency"])
        kwargs["max_concurrency"] = int(config["max_provisioned_concurrency"])
    if "scale_to_zero_enabled" in config:
        kwargs["scale_to_zero"] = bool(config["scale_to_zero_enabled"])
    return kwargs


def apply_recommendation(client, name: str, recommendation, *, entity: str | None = None,
                         custom: bool = False, wait: bool = True, timeout: float = 1200.0,
                         on_progress: Callable | None = None):
    """Resize one served entity as recommended (workload size, or min/max provisioned concurrency
    with `custom` or when no size fits), keeping the rest of its config; with `wait`, follow the
    update until the endpoint is READY again. Returns the endpoint's status."""
    status = client.update_config(name, entity=entity, wait=wait, timeout=timeout, on_progress=on_progress,
                                  **config_changes(recommendation, custom))
    if wait and not status.is_ready:
        raise ServingError(f"Endpoint '{name}' settled as {status.state} after the update",
                           f"See `%serve status {name}`.")
    return status


# --------------------------------------------------------------------------------------------------
# rendering shared by the magic and the widget

def table(frame):
    """The columns worth reading, rounded (the full DataFrame keeps every column)."""
    if frame is None or len(frame) == 0:
        return frame
    columns = [c for c in TABLE_COLUMNS if c in frame.columns]
    if "mode" in frame.columns and (frame["mode"] == "closed").all():
        columns = [c for c in columns if c != "target_rate"]
    out = frame[columns].copy()
    for column in out.columns:
        if out[column].dtype.kind == "f":
            out[column] = out[column].round(3 if column == "failure_share" else 1)
    return out


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def recommendation_rows(rec) -> list[tuple[str, str]]:
    """(label, value) pairs: the numbers of a recommendation card."""
    size = (f"{rec.workload_size} ({rec.min_provisioned_concurrency}–{rec.max_provisioned_concurrency} "
            "concurrent requests)" if rec.workload_size else
            f"custom: min {rec.min_provisioned_concurrency}, max {rec.max_provisioned_concurrency}")
    rows = [
        ("Target", f"{rec.target_qps:g} QPS" + (f", p99 ≤ {rec.p99_target_ms:g} ms"
                                                 if rec.p99_target_ms is not None else "")),
        ("Runtime (concurrency %d)" % rec.runtime_concurrency,
         f"p50 {rec.runtime_p50_ms:.1f} ms, mean {rec.runtime_mean_ms:.1f} ms"),
        ("Little's law", f"{rec.littles_law_concurrency:.2f} in flight → ×{rec.headroom:g} headroom → "
                         f"{rec.headroom_concurrency}"),
        ("Load-test rule", "–" if rec.load_test_concurrency is None else
         f"{_fmt(rec.qps_at_4)} QPS at concurrency 4 → {rec.load_test_concurrency}"),
    ]
    if rec.p99_target_ms is not None:
        rows.append(("Latency target", "not met at any tested concurrency"
                     if rec.lowest_concurrency_meeting_p99 is None else
                     f"met at concurrency {rec.lowest_concurrency_meeting_p99}–"
                     f"{rec.highest_concurrency_meeting_p99}"
                     + (f" → {rec.latency_bound_concurrency}" if rec.latency_bound_concurrency else "")))
    rows += [
        ("Provisioned concurrency", str(rec.required_concurrency)),
        ("Workload size", size),
        ("Scale to zero", "on" if rec.scale_to_zero else "off"),
    ]
    return rows


def recommendation_html(rec, *, applied: str | None = None) -> str:
    """A card: the numbers, the explanation sentences, the warnings and the config to apply."""
    if rec is None:
        return ""
    e = html.escape
    head = (f"<div style='font-size:1.1em;margin-bottom:6px'><b>Recommendation:</b> provisioned "
            f"concurrency <b>{rec.required_concurrency}</b> → "
            f"<b>{e(rec.workload_size or 'custom range')}</b> for {rec.target_qps:g} QPS</div>")
    numbers = "".join(f"<tr><td style='text-align:left;padding-right:14px;color:#555'>{e(k)}</td>"
                      f"<td style='text-align:left'>{e(v)}</td></tr>" for k, v in recommendation_rows(rec))
    why = "".join(f"<li>{e(s)}</li>" for s in rec.explanation)
    warnings = "".join(f"<li>{e(w)}</li>" for w in rec.warnings)
    parts = [
        "<div style='border:1px solid #bbb;border-radius:6px;padding:8px 12px;margin:4px 0'>",
        head,
        f"<table style='border-collapse:collapse'>{numbers}</table>",
        f"<details open><summary>Why</summary><ol style='margin:4px 0'>{why}</ol></details>",
    ]
    if warnings:
        parts.append(f"<div style='color:#a15c00'><b>Warnings</b><ul style='margin:4px 0'>{warnings}</ul></div>")
    parts.append("<div style='color:#555'>Apply sets the served entity's "
                 f"<code>{e(json.dumps(rec.served_entity_config()))}</code> and keeps the rest of its config.</div>")
    if applied:
        parts.append(f"<div style='color:#1a7f37'><b>{e(applied)}</b></div>")
    parts.append("</div>")
    return "".join(parts)


def chart_title(name: str, frame, duration: float | None = None) -> str:
    open_loop = len(frame) > 0 and "mode" in frame.columns and (frame["mode"] == "open").all()
    kind = "open-loop runs" if open_loop else "closed-loop sweep"
    per = f", {duration:g} s per step" if duration else ""
    return f"Endpoint '{name}': {kind}{per}"


def render_png(name: str, frame, *, duration: float | None = None, target_qps: float | None = None,
               p99_ms: float | None = None) -> bytes:
    from . import plots

    fig = plots.sweep_figure(frame, title=chart_title(name, frame, duration), target_qps=target_qps,
                             p99_target_ms=p99_ms)
    return plots.figure_png(fig)


# --------------------------------------------------------------------------------------------------
# the result

@dataclass(eq=False)
class BenchResult:
    """What `run_bench` returns: the steps (`frame`), the `recommendation` (None without a target
    QPS or in open-loop mode), notes about the run, and the chart. Unpacks as (frame, recommendation)."""

    endpoint: str
    frame: Any
    recommendation: Any = None
    mode: str = "closed"
    entity: str | None = None
    duration: float | None = None
    target_qps: float | None = None
    p99_ms: float | None = None
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    client: Any = field(default=None, repr=False)
    _png: bytes | None = field(default=None, repr=False)

    def __iter__(self):
        yield self.frame
        yield self.recommendation

    def figure(self):
        """A new matplotlib Figure of the run (latency and throughput)."""
        from . import plots

        return plots.sweep_figure(self.frame, title=chart_title(self.endpoint, self.frame, self.duration),
                                  target_qps=self.target_qps, p99_target_ms=self.p99_ms)

    def png(self) -> bytes:
        if self._png is None:
            from . import plots

            self._png = plots.figure_png(self.figure())
        return self._png

    def save_chart(self, path) -> None:
        with open(path, "wb") as fh:
            fh.write(self.png())

    def apply(self, client=None, *, custom: bool = False, wait: bool = True, timeout: float = 1200.0):
        """Resize the endpoint as recommended and wait until it is READY again."""
        if self.recommendation is None:
            raise BenchError("This benchmark has no recommendation to apply",
                             "Run it with a target QPS (--target-qps Q).")
        client = client or self.client
        if client is None:
            from .. import api

            client = api.get_client()
        return apply_recommendation(client, self.endpoint, self.recommendation, entity=self.entity,
                                    custom=custom, wait=wait, timeout=timeout)

    def summary(self) -> str:
        steps = len(self.frame) if self.frame is not None else 0
        text = f"Benchmark of '{self.endpoint}': {steps} step(s)"
        if self.interrupted:
            text += " (stopped early)"
        rec = self.recommendation
        if rec is not None:
            text += (f"; recommended provisioned concurrency {rec.required_concurrency} "
                     f"({rec.workload_size or 'custom range'}) for {rec.target_qps:g} QPS")
        return text

    def __repr__(self) -> str:
        parts = [self.summary()]
        if self.frame is not None and len(self.frame):
            parts.append(table(self.frame).to_string())
        parts += [f"Note: {n}" for n in self.notes]
        if self.recommendation is not None:
            parts.append(str(self.recommendation))
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        import base64

        parts = [f"<div><b>{html.escape(self.summary())}</b></div>"]
        parts += [f"<div style='color:#a15c00'>{html.escape(n)}</div>" for n in self.notes]
        if self.frame is not None and len(self.frame):
            png = base64.b64encode(self.png()).decode("ascii")
            parts.append(f"<img alt='latency and throughput' src='data:image/png;base64,{png}'/>")
            parts.append(table(self.frame).to_html())
        parts.append(recommendation_html(self.recommendation))
        return "".join(parts)


# --------------------------------------------------------------------------------------------------
# running

class _LiveDisplay:
    """Progress and the chart while a run goes: display handles in Jupyter, lines elsewhere."""

    def __init__(self, show: bool):
        self.enabled = show
        self.shell = None
        if show:
            try:
                from IPython import get_ipython

                self.shell = get_ipython()
            except ImportError:
                self.shell = None
        self.rich = self.shell is not None and getattr(self.shell, "kernel", None) is not None
        self.text_handle = None
        self.chart_handle = None

    def text(self, line: str) -> None:
        if not self.enabled:
            return
        if not self.rich:
            print(line, flush=True)
            return
        from IPython.display import display

        bundle = {"text/plain": line}
        if self.text_handle is None:
            self.text_handle = display(bundle, raw=True, display_id=True)
        else:
            self.text_handle.update(bundle, raw=True)

    def chart(self, png: bytes) -> None:
        if not (self.enabled and self.rich):
            return
        from IPython.display import Image, display

        if self.chart_handle is None:
            self.chart_handle = display(Image(data=png, format="png"), display_id=True)
        else:
            self.chart_handle.update(Image(data=png, format="png"))

    def clear_chart(self) -> None:
        if self.chart_handle is not None:
            self.chart_handle.update({"text/plain": ""}, raw=True)


def _engine_error(err: BaseException) -> ServingError:
    from .loadgen import LoadTestError
    from .target import TargetNotAllowed

    if isinstance(err, TargetNotAllowed):
        return BenchError(str(err), "")
    if isinstance(err, LoadTestError):
        return ServingError(f"The load test could not run: {err}", "Check that the endpoint answers queries.")
    if isinstance(err, (ValueError, TypeError)):
        return BenchError(str(err), "")
    raise err


def run_bench(client, name: str, *, concurrency: Any = DEFAULT_CONCURRENCY,
              duration: float = DEFAULT_DURATION_S, warmup: float = DEFAULT_WARMUP_S,
              target_qps: float | None = None, p99_ms: float | None = None, rate: Any = None,
              arrival: str = "poisson", entity: str | None = None, payload: Any = None,
              headroom: float | None = None, idle_traffic: bool = False, timeout: float = 30.0,
              output: str | None = None, user_ns: dict | None = None,
              namespace: Mapping[str, Any] | None = None, show: bool = True,
              stop: threading.Event | None = None) -> BenchResult | None:
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
    """
    from .runner import BenchmarkJob, open_loop, sweep
    from .sizing import DEFAULT_HEADROOM, recommend

    target_qps = _positive(target_qps, "target QPS")
    p99_ms = _positive(p99_ms, "p99 target (ms)")
    duration = _positive(duration, "duration") or DEFAULT_DURATION_S
    if output is not None and (not output.isidentifier() or user_ns is None):
        raise BenchError(f"-o {output}: not a valid variable name" if not output.isidentifier()
                         else "-o needs a namespace to store the result in", "Use a Python identifier.")
    if arrival not in ("poisson", "uniform"):
        raise BenchError(f"arrival must be 'poisson' or 'uniform', got {arrival!r}", "")
    open_mode = rate is not None
    levels = parse_rates(rate) if open_mode else parse_levels(concurrency)
    status = check_endpoint(client, name, entity)
    notes = [] if open_mode else limit_notes(levels, entity_limit(status, entity))
    body = resolve_payload(client, name, payload, entity, namespace if namespace is not None else user_ns)
    host, token = host_and_token(client)

    live = _LiveDisplay(show)
    total = len(levels)
    steps: list = []
    finished: list[tuple[Any, bytes | None]] = []  # (step, chart) once the chart is drawn

    def on_step(step) -> None:  # the load generator's thread, between steps
        from .runner import to_frame

        steps.append(step)
        png = render_png(name, to_frame(list(steps)), duration=duration, target_qps=target_qps,
                         p99_ms=p99_ms) if live.rich else None
        finished.append((step, png))

    extra = {"arrival": arrival} if open_mode else {}
    job = BenchmarkJob(open_loop if open_mode else sweep, host, token, name, body, levels,
                       on_step=on_step, duration=duration, warmup=warmup, entity=entity, timeout=timeout,
                       **extra)
    unit = "rate" if open_mode else "concurrency"
    for note in notes:
        live.text(f"Note: {note}")
    live.text(f"Benchmarking '{name}': step 1/{total} ({unit} {levels[0]:g}, {duration:g} s)…")
    interrupted = False
    shown = 0
    job.start()
    try:
        while not job.wait(POLL_S):
            if stop is not None and stop.is_set() and not interrupted:
                job.stop()
                interrupted = True
            shown = _report(live, job, finished, shown, levels, unit, duration, name)
    except KeyboardInterrupt:
        interrupted = True
        job.stop()
        live.text(f"Stopping the benchmark of '{name}'…")
        job.wait()
    _report(live, job, finished, shown, levels, unit, duration, name)
    try:
        frame = job.result()
    except ServingError:
        raise
    except Exception as err:  # noqa: BLE001 - engine errors become one-line ServingErrors
        raise _engine_error(err) from None
    if frame is None:
        from .runner import to_frame

        frame = to_frame(job.steps)
    interrupted = interrupted or bool(len(frame) and frame["interrupted"].any())

    recommendation = None
    if not open_mode and target_qps is not None and len(frame):
        try:
            recommendation = recommend(frame, target_qps, p99_target_ms=p99_ms,
                                       headroom=headroom or DEFAULT_HEADROOM, idle_traffic=idle_traffic)
        except ValueError as err:
            notes.append(f"No recommendation: {err}")
    elif not open_mode and target_qps is None:
        notes.append("Give a target QPS (--target-qps Q) for a sizing recommendation.")
    result = BenchResult(endpoint=name, frame=frame, recommendation=recommendation,
                         mode="open" if open_mode else "closed", entity=entity, duration=duration,
                         target_qps=target_qps, p99_ms=p99_ms, interrupted=interrupted, notes=notes,
                         client=client, _png=finished[-1][1] if finished else None)
    if output is not None:
        user_ns[output] = result
        live.text(f"{result.summary()}. Stored in '{output}' (.frame, .recommendation, .apply()).")
        return None
    live.text(result.summary())
    live.clear_chart()  # the returned result shows the final chart
    return result


def _report(live: _LiveDisplay, job, finished: list, shown: int, levels: list, unit: str,
            duration: float, name: str) -> int:
    done = list(finished)
    for index in range(shown, len(done)):
        step, png = done[index]
        if png is not None:
            live.chart(png)
        following = (f"; step {index + 2}/{len(levels)} ({unit} {levels[index + 1]:g}, "
                     f"{duration:g} s)…" if index + 1 < len(levels) and not job.done else "")
        live.text(f"'{name}' step {index + 1}/{len(levels)}: {step.describe()}{following}")
    return len(done)


# --------------------------------------------------------------------------------------------------
# the magic's side: `%serve bench NAME [options]`

BENCH_USAGE = ("%serve bench NAME [--target-qps Q] [--p99-ms L] [--concurrency 1,2,4,8] [--duration S] "
               "[--warmup S] [--rate R [--arrival uniform]] [--entity E] [--payload $VAR|JSON] "
               "[--idle-traffic] [-o VAR]")


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `%serve bench`, added to the magic's (non-exiting) parser."""
    parser.add_argument("name", help="the endpoint")
    parser.add_argument("--target-qps", type=float, metavar="Q", help="requests/s to size for")
    parser.add_argument("--p99-ms", type=float, metavar="L", help="p99 latency target in ms")
    parser.add_argument("--concurrency", "-c", default="1,2,4,8", metavar="1,2,4,8",
                        help="closed-loop concurrency levels (default 1,2,4,8)")
    parser.add_argument("--duration", "-d", type=float, default=DEFAULT_DURATION_S, metavar="S",
                        help=f"measured seconds per step (default {DEFAULT_DURATION_S:g})")
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, metavar="S",
                        help=f"unmeasured seconds before each step (default {DEFAULT_WARMUP_S:g})")
    parser.add_argument("--rate", metavar="R", help="open loop at R requests/s (or R1,R2) instead of a sweep")
    parser.add_argument("--arrival", choices=("poisson", "uniform"), default="poisson",
                        help="open loop: Poisson (default) or evenly spaced arrivals")
    parser.add_argument("--entity", metavar="E", help="benchmark (and resize) one served entity")
    parser.add_argument("--payload", metavar="$VAR|JSON", help="request body (default: the schema example)")
    parser.add_argument("--idle-traffic", action="store_true",
                        help="traffic has idle periods (lets sizing consider scale to zero)")
    parser.add_argument("-o", "--output", metavar="VAR", help="store the result in VAR, show no table")
    return parser


def run_bench_args(client, opts: argparse.Namespace, user_ns: dict | None = None,
                   namespace: Mapping[str, Any] | None = None, show: bool = True) -> BenchResult | None:
    """`run_bench` from the options `add_bench_arguments` parsed (what `%serve bench` calls).
    `user_ns`: where `-o VAR` stores the result; `namespace`: where `--payload $var` is looked up
    (default `user_ns`; the magic passes its user + local namespace)."""
    return run_bench(client, opts.name, concurrency=opts.concurrency, duration=opts.duration,
                     warmup=opts.warmup, target_qps=opts.target_qps, p99_ms=opts.p99_ms, rate=opts.rate,
                     arrival=opts.arrival, entity=opts.entity, payload=opts.payload,
                     idle_traffic=opts.idle_traffic, output=opts.output, user_ns=user_ns,
                     namespace=namespace, show=show)


__all__ = ["BenchError", "BenchResult", "add_bench_arguments", "apply_recommendation", "config_changes",
           "default_payload", "host_and_token", "parse_levels", "parse_rates", "recommendation_html",
           "resolve_payload", "run_bench", "run_bench_args", "table", "BENCH_USAGE"]
