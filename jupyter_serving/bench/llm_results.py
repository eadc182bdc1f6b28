"""What one LLM load step measured (`LlmStepResult`) and its flat row for pandas. Pure: no I/O.

Definitions: `llm_stats` (vLLM's TTFT, ITL, TPOT, E2E latency, throughput, goodput).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jupyter_serving.bench.llm_stats import METRICS, LlmRecorder, Samples, StreamMetrics, goodput_rps
from jupyter_serving.bench.results import SATURATED_LOOP_CPU, SATURATED_SCHEDULE_LAG_MS
from jupyter_serving.bench.stats import LatencyHistogram

# Chunk timestamps are taken in the event loop's callbacks: a loop that wakes up this late (p99) adds
# that much to the TTFTs and ITLs it measures (the same bound as the open-loop scheduler's lag).
SATURATED_LOOP_LAG_MS = SATURATED_SCHEDULE_LAG_MS


@dataclass
class LlmStepResult:
    """One closed-loop concurrency level or one open-loop rate of an LLM benchmark."""

    mode: str                       # "closed" or "open"
    concurrency: int                # closed: streams; open: most connections in use
    target_rate: float | None       # open loop: requests/s asked for
    duration_s: float               # the throughput window
    requests: int                   # measured requests (sent, or scheduled, in the measured window)
    successes: int
    rate_limited: int               # 429
    errors: dict[str, int]
    unsent: int                     # open loop: scheduled, never sent (in-flight cap)
    incomplete: int                 # measured, unanswered when the step ended
    requests_per_s: float           # successful streams finished in the window, per second
    output_tokens_per_s: float
    input_tokens_per_s: float
    samples: dict[str, Samples]     # ttft, itl, tpot, e2e in ms
    streams: list[StreamMetrics]    # per successful measured request (ITLs left out), for goodput
    output_tokens_mean: float
    input_tokens_mean: float
    schedule_lag: LatencyHistogram  # open loop: how late the scheduler dispatched, µs
    loop_lag: LatencyHistogram      # how late the event loop woke up, µs
    loop_cpu: float                 # the load generator's thread: CPU s / wall s
    interrupted: bool = False
    error_sample: str | None = None
    targets: dict[str, float | None] = field(default_factory=dict)  # ttft_ms / tpot_ms for goodput

    @property
    def failures(self) -> int:
        failed = self.rate_limited + sum(self.errors.values()) + self.unsent
        return failed + (self.incomplete if self.mode == "open" else 0)

    @property
    def failure_share(self) -> float:
        total = self.successes + self.failures
        return self.failures / total if total else math.nan

    @property
    def total_tokens_per_s(self) -> float:
        return self.output_tokens_per_s + self.input_tokens_per_s

    @property
    def client_saturated(self) -> bool:
        lag = self.schedule_lag.percentile(99) / 1000 if self.schedule_lag.count else 0.0
        loop = self.loop_lag.percentile(99) / 1000 if self.loop_lag.count else 0.0
        return (self.loop_cpu >= SATURATED_LOOP_CPU or lag >= SATURATED_SCHEDULE_LAG_MS
                or loop >= SATURATED_LOOP_LAG_MS)

    def goodput(self, ttft_ms: float | None = None, tpot_ms: float | None = None) -> float:
        return goodput_rps(self.streams, self.requests_per_s, ttft_ms, tpot_ms)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "mode": self.mode, "concurrency": self.concurrency, "target_rate": self.target_rate,
            "duration_s": self.duration_s, "requests": self.requests,
            "requests_per_s": self.requests_per_s, "output_tokens_per_s": self.output_tokens_per_s,
            "total_tokens_per_s": self.total_tokens_per_s, "goodput_rps": self.goodput(**self.targets),
            "successes": self.successes, "rate_limited": self.rate_limited,
            "error_count": sum(self.errors.values()), "errors": dict(self.errors), "unsent": self.unsent,
            "incomplete": self.incomplete, "failure_share": self.failure_share,
            "output_tokens_mean": self.output_tokens_mean, "input_tokens_mean": self.input_tokens_mean,
        }
        for name in METRICS:
            row.update(self.samples[name].summary(name))
        lag = self.schedule_lag.summary_ms("lag_") if self.mode == "open" else {}
        row["lag_p99_ms"] = lag.get("lag_p99_ms", math.nan)
        row["loop_lag_p99_ms"] = self.loop_lag.percentile(99) / 1000 if self.loop_lag.count else math.nan
        row.update({"loop_cpu": self.loop_cpu, "client_saturated": self.client_saturated,
                    "interrupted": self.interrupted, "error_sample": self.error_sample})
        return row

    def describe(self) -> str:
        """One line for logs and progress displays."""
        head = f"c={self.concurrency}" if self.mode == "closed" else f"rate={self.target_rate:g}/s"
        p = {name: self.samples[name].percentiles((50.0,))[50.0] for name in ("ttft", "itl", "tpot")}
        text = (f"{head}: {self.output_tokens_per_s:.0f} output tokens/s, {self.requests_per_s:.2f} requests/s, "
                f"TTFT p50 {p['ttft']:.1f} ms, ITL p50 {p['itl']:.1f} ms, TPOT p50 {p['tpot']:.1f} ms, "
                f"{self.rate_limited} × 429, {sum(self.errors.values())} errors")
        if self.client_saturated:
            text += " (client saturated: numbers measure the load generator, not the server)"
        if self.interrupted:
            text += " (interrupted)"
        return text


def build_llm_result(recorder: LlmRecorder, rates: tuple[float, float, float], *, mode: str,
                     concurrency: int, target_rate: float | None, window_s: float, unsent: int,
                     incomplete: int, schedule_lag: LatencyHistogram, loop_lag: LatencyHistogram,
                     loop_cpu: float, interrupted: bool,
                     targets: dict[str, float | None] | None = None) -> LlmStepResult:
    output_tps, rps, input_tps = rates
    done = recorder.successes
    requests = done + recorder.rate_limited + sum(recorder.errors.values()) + unsent + incomplete
    return LlmStepResult(
        mode=mode, concurrency=concurrency, target_rate=target_rate, duration_s=window_s,
        requests=requests, successes=done, rate_limited=recorder.rate_limited,
        errors=dict(recorder.errors), unsent=unsent, incomplete=incomplete, requests_per_s=rps,
        output_tokens_per_s=output_tps, input_tokens_per_s=input_tps, samples=recorder.samples,
        streams=recorder.streams,
        output_tokens_mean=recorder.output_tokens / done if done else math.nan,
        input_tokens_mean=recorder.input_tokens / done if done else math.nan,
        schedule_lag=schedule_lag, loop_lag=loop_lag, loop_cpu=loop_cpu, interrupted=interrupted,
        error_sample=recorder.error_sample, targets=dict(targets or {}))


def to_llm_frame(results):
    """One row per step (see LlmStepResult.as_row for the columns)."""
    import pandas as pd

    frame = pd.DataFrame([r.as_row() for r in results])
    frame.index.name = "step"
    return frame


__all__ = ["LlmStepResult", "SATURATED_LOOP_LAG_MS", "build_llm_result", "to_llm_frame"]
