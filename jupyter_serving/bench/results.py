"""What one load step measured: counters filled while it runs, and the flat result it reports."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jupyter_serving.bench.stats import LatencyHistogram

# The client is the bottleneck when its event-loop thread was busy this share of the wall time.
SATURATED_LOOP_CPU = 0.9
# An open-loop scheduler running this late (p99) no longer sends at the rate it claims.
SATURATED_SCHEDULE_LAG_MS = 25.0


class StepRecorder:
    """Counts responses of one step. Latency histograms hold successful (200) responses only:
    a 429 answered in 0.2 ms says nothing about how fast the model is."""

    def __init__(self) -> None:
        self.latency = LatencyHistogram()
        self.schedule_lag = LatencyHistogram()
        self.successes = 0
        self.rate_limited = 0
        self.errors: Counter[str] = Counter()
        self.served: Counter[bytes] = Counter()
        self.error_sample: str | None = None

    def record_response(self, status: int, latency_ns: int, served_model: bytes | None,
                        error_body: bytes) -> None:
        if status == 200:
            self.successes += 1
            self.latency.record(latency_ns // 1000)
            if served_model is not None:
                self.served[served_model] += 1
        elif status == 429:
            self.rate_limited += 1
        else:
            self.record_failure(str(status), error_body)

    def record_failure(self, kind: str, detail: bytes | str = b"") -> None:
        """`kind` is an HTTP status ("400") or "timeout", "connection", "protocol"."""
        self.errors[kind] += 1
        if self.error_sample is None:
            text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
            self.error_sample = f"{kind}: {text}".strip().rstrip(":")


@dataclass
class StepResult:
    """One step of a sweep (closed loop) or one open-loop run. `as_row()` flattens it for pandas."""

    mode: str                      # "closed" or "open"
    concurrency: int               # closed: workers; open: most connections in use
    target_rate: float | None      # open loop: requests/s asked for
    duration_s: float              # measured window actually covered
    successes: int
    rate_limited: int              # 429 REQUEST_LIMIT_EXCEEDED
    errors: dict[str, int]         # other failures by status or kind
    unsent: int                    # open loop: scheduled in the window, never sent (in-flight cap)
    incomplete: int                # still unanswered when the run ended
    qps: float                     # successful responses per second
    responses_per_s: float         # every answered request per second, 429s and errors included
    latency: LatencyHistogram      # successful responses, µs; open loop: from the intended send time
    schedule_lag: LatencyHistogram  # open loop: how late the scheduler dispatched, µs
    served_models: dict[str, int]
    client_cpu: float              # process CPU seconds / wall seconds (1.0 = one core)
    loop_cpu: float                # the load generator's own thread, same unit
    interrupted: bool = False
    error_sample: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        failed = self.rate_limited + sum(self.errors.values()) + self.unsent
        # In a closed loop the last requests of a window are cut off by design; in an open loop
        # an unanswered request is a user left waiting.
        return failed + (self.incomplete if self.mode == "open" else 0)

    @property
    def failure_share(self) -> float:
        total = self.successes + self.failures
        return self.failures / total if total else math.nan

    @property
    def client_saturated(self) -> bool:
        lag_p99 = self.schedule_lag.percentile(99) / 1000 if self.schedule_lag.count else 0.0
        return self.loop_cpu >= SATURATED_LOOP_CPU or lag_p99 >= SATURATED_SCHEDULE_LAG_MS

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "target_rate": self.target_rate,
            "duration_s": self.duration_s,
            "qps": self.qps,
            "responses_per_s": self.responses_per_s,
            "successes": self.successes,
            "rate_limited": self.rate_limited,
            "error_count": sum(self.errors.values()),
            "errors": dict(self.errors),
            "unsent": self.unsent,
            "incomplete": self.incomplete,
            "failure_share": self.failure_share,
        }
        row.update(self.latency.summary_ms())
        lag = self.schedule_lag.summary_ms("lag_") if self.mode == "open" else {}
        row.update({k: lag.get(k, math.nan) for k in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms")})
        row.update({
            "served_models": dict(self.served_models),
            "client_cpu": self.client_cpu,
            "loop_cpu": self.loop_cpu,
            "client_saturated": self.client_saturated,
            "interrupted": self.interrupted,
            "error_sample": self.error_sample,
        })
        row.update(self.extra)
        return row

    def describe(self) -> str:
        """One line for logs and progress displays."""
        head = (f"c={self.concurrency}" if self.mode == "closed"
                else f"rate={self.target_rate:g}/s")
        s = self.latency.summary_ms()
        text = (f"{head}: {self.qps:.1f} QPS, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
                f"{self.rate_limited} × 429, {sum(self.errors.values())} errors")
        if self.client_saturated:
            text += " (client saturated: numbers measure the load generator, not the server)"
        if self.interrupted:
            text += " (interrupted)"
        return text


def build_result(recorder: StepRecorder, *, mode: str, concurrency: int,
                 target_rate: float | None, window_s: float, answered_in_window: int,
                 successes_in_window: int, unsent: int, incomplete: int, cpu_s: float,
                 loop_cpu_s: float, interrupted: bool) -> StepResult:
    wall = max(window_s, 1e-9)
    return StepResult(
        mode=mode,
        concurrency=concurrency,
        target_rate=target_rate,
        duration_s=window_s,
        successes=recorder.successes,
        rate_limited=recorder.rate_limited,
        errors=dict(recorder.errors),
        unsent=unsent,
        incomplete=incomplete,
        qps=successes_in_window / wall,
        responses_per_s=answered_in_window / wall,
        latency=recorder.latency,
        schedule_lag=recorder.schedule_lag,
        served_models={k.decode("latin-1"): v for k, v in recorder.served.items()},
        client_cpu=cpu_s / wall,
        loop_cpu=loop_cpu_s / wall,
        interrupted=interrupted,
        error_sample=recorder.error_sample,
    )
