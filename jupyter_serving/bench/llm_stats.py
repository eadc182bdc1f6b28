"""LLM streaming metrics with vLLM's definitions (`vllm/benchmarks/serve.py` `calculate_metrics`,
`vllm/benchmarks/lib/endpoint_request_func.py`). Pure: no I/O.

Per request (a stream of server-sent events; `start` is when it was sent, or in an open loop when it
was scheduled to be sent, so that client-side queueing counts):
- TTFT: start → the first chunk carrying content.
- ITL: the gap between each content chunk and the one before it (a chunk holding several tokens is
  one gap, as in vLLM; chunks that arrive in one read share a timestamp and so a gap of 0).
- E2E latency: start → the last content chunk (vLLM: "only token chunks advance the request end").
- Output tokens: `usage.completion_tokens` of the stream (its final chunk) when present, else the
  number of content chunks.
- TPOT: (E2E − TTFT) / (output tokens − 1), for requests with more than one output token.
Per step: mean, std (population, like numpy), p50 (median), p90 and p99 of each, percentiles by
linear interpolation between samples (numpy's default); ITLs are pooled over all requests. Output
tokens/s, total (input + output) tokens/s and requests/s are counted over the measured window
(`RateBins`); goodput is requests/s that met every latency target given (vLLM's `request_goodput`;
a request with one output token has TPOT 0 there).

Chunks without content (a role-only preamble, the final `finish_reason` / `usage` chunk) are not
tokens: vLLM's chat client counts any chunk with `choices` (an empty preamble would set TTFT), which
differs only for servers that send content-free chunks early.
"""
from __future__ import annotations

import math
import random
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTS = (50.0, 90.0, 99.0)
METRICS = ("ttft", "itl", "tpot", "e2e")
RESERVOIR = 1_000_000  # exact percentiles up to this many samples a metric, a uniform sample beyond
NS_PER_MS = 1e6


def percentile(ordered: Sequence[float], percent: float) -> float:
    """`percent` (0-100) of ascending `ordered` by linear interpolation (numpy.percentile's default)."""
    if not 0.0 <= percent <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {percent}")
    n = len(ordered)
    if n == 0:
        return math.nan
    rank = (n - 1) * percent / 100.0
    low = int(math.floor(rank))
    high = min(low + 1, n - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Samples:
    """Values of one metric (ms): exact count, mean and std; percentiles from every value up to
    RESERVOIR of them, then from a uniform random sample of that size (Algorithm R)."""

    __slots__ = ("count", "total", "total_sq", "values", "capacity", "_random")

    def __init__(self, capacity: int = RESERVOIR, seed: int = 0):
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.values = array("d")
        self.capacity = capacity
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.total_sq += value * value
        if len(self.values) < self.capacity:
            self.values.append(value)
        else:
            slot = self._random.randrange(self.count)
            if slot < self.capacity:
                self.values[slot] = value

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        if not self.count:
            return math.nan
        if self.count == len(self.values):  # exact, two passes
            mean = self.mean
            return math.sqrt(sum((v - mean) ** 2 for v in self.values) / self.count)
        return math.sqrt(max(0.0, self.total_sq / self.count - self.mean ** 2))

    def percentiles(self, percents: Iterable[float] = PERCENTS) -> dict[float, float]:
        ordered = sorted(self.values)
        return {float(p): percentile(ordered, p) for p in percents}

    def summary(self, prefix: str) -> dict[str, float]:
        """`{prefix}_mean_ms`, `_std_ms`, `_p50_ms`, `_p90_ms`, `_p99_ms`."""
        row = {f"{prefix}_mean_ms": self.mean, f"{prefix}_std_ms": self.std}
        row.update({f"{prefix}_p{p:g}_ms": v for p, v in self.percentiles().items()})
        return row


@dataclass(frozen=True)
class StreamMetrics:
    """One successful stream, in ms (see the module docstring)."""

    ttft_ms: float
    e2e_ms: float
    tpot_ms: float | None      # None with at most one output token
    itl_ms: tuple[float, ...]
    output_tokens: int
    input_tokens: int


def stream_metrics(start_ns: int, chunk_ns: Sequence[int], usage_out: int | None,
                   input_tokens: int) -> StreamMetrics | None:
    """The metrics of a stream whose content chunks arrived at `chunk_ns` (perf_counter ns); None
    when no content arrived (vLLM counts that request as failed)."""
    if not chunk_ns:
        return None
    ttft = (chunk_ns[0] - start_ns) / NS_PER_MS
    e2e = (chunk_ns[-1] - start_ns) / NS_PER_MS
    output = usage_out if usage_out is not None else len(chunk_ns)
    tpot = (e2e - ttft) / (output - 1) if output > 1 else None
    itl = tuple((b - a) / NS_PER_MS for a, b in zip(chunk_ns, chunk_ns[1:]))
    return StreamMetrics(ttft, e2e, tpot, itl, output, input_tokens)


def is_good(m: StreamMetrics, ttft_ms: float | None = None, tpot_ms: float | None = None,
            e2e_ms: float | None = None) -> bool:
    """Whether a request met every target given (vLLM's goodput rule: TPOT 0 with one token)."""
    checks = ((ttft_ms, m.ttft_ms), (tpot_ms, m.tpot_ms or 0.0), (e2e_ms, m.e2e_ms))
    return all(target is None or value <= target for target, value in checks)


class LlmRecorder:
    """The measured requests of one step: latency samples of the successful streams, and failures
    by kind (429s apart: the endpoint refusing load, not serving it)."""

    def __init__(self) -> None:
        self.samples = {name: Samples() for name in METRICS}
        self.streams: list[StreamMetrics] = []
        self.successes = 0
        self.rate_limited = 0
        self.errors: Counter[str] = Counter()
        self.error_sample: str | None = None
        self.output_tokens = 0
        self.input_tokens = 0

    def record_stream(self, m: StreamMetrics) -> None:
        self.successes += 1
        self.output_tokens += m.output_tokens
        self.input_tokens += m.input_tokens
        self.samples["ttft"].add(m.ttft_ms)
        self.samples["e2e"].add(m.e2e_ms)
        if m.tpot_ms is not None:
            self.samples["tpot"].add(m.tpot_ms)
        self.samples["itl"].extend(m.itl_ms)
        self.streams.append(m if not m.itl_ms else StreamMetrics(
            m.ttft_ms, m.e2e_ms, m.tpot_ms, (), m.output_tokens, m.input_tokens))  # ITLs kept once

    def record_status(self, status: int, body: bytes | str = b"") -> None:
        if status == 429:
            self.rate_limited += 1
        else:
            self.record_failure(str(status), body)

    def record_failure(self, kind: str, detail: bytes | str = b"") -> None:
        """`kind`: an HTTP status, "timeout", "connection", "protocol", "stream" (an error event),
        "empty" (no content chunk) or "not streamed" (a JSON answer)."""
        self.errors[kind] += 1
        if self.error_sample is None:
            text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
            self.error_sample = f"{kind}: {text}".strip().rstrip(":")


class RateBins:
    """Output tokens and finished requests per time bin from `start_ns`, so that throughput can be
    read over [start, any bin boundary) once the step knows where its window ends. A request's
    output tokens are spread over its content chunks (usage tokens / chunks each)."""

    def __init__(self, start_ns: int, bin_ns: int = 10_000_000):
        self.start_ns = start_ns
        self.bin_ns = bin_ns
        self.tokens: list[float] = []
        self.requests: list[int] = []
        self.inputs: list[int] = []

    def _index(self, when_ns: int, series: list) -> int | None:
        if when_ns < self.start_ns:
            return None
        index = (when_ns - self.start_ns) // self.bin_ns
        if index >= len(series):
            series.extend([0] * (index + 1 - len(series)))
        return index

    def add_tokens(self, chunk_ns: Sequence[int], tokens: float) -> None:
        if not chunk_ns or tokens <= 0:
            return
        weight = tokens / len(chunk_ns)
        series = self.tokens
        for when in chunk_ns:
            index = self._index(when, series)
            if index is not None:
                series[index] += weight

    def add_request(self, done_ns: int, input_tokens: int) -> None:
        index = self._index(done_ns, self.requests)
        if index is not None:
            self.requests[index] += 1
            self._index(done_ns, self.inputs)
            self.inputs[index] += input_tokens

    def window_end(self, end_ns: int) -> int:
        """The last bin boundary at or before `end_ns` (at least one bin after the start)."""
        bins = max(1, (end_ns - self.start_ns) // self.bin_ns)
        return self.start_ns + bins * self.bin_ns

    def rates(self, end_ns: int) -> tuple[float, float, float]:
        """(output tokens/s, requests/s, input tokens/s) over [start, window_end(end_ns))."""
        bins = (self.window_end(end_ns) - self.start_ns) // self.bin_ns
        seconds = bins * self.bin_ns / 1e9
        return (sum(self.tokens[:bins]) / seconds, sum(self.requests[:bins]) / seconds,
                sum(self.inputs[:bins]) / seconds)


def goodput_rps(streams: Sequence[StreamMetrics], requests_per_s: float, ttft_ms: float | None = None,
                tpot_ms: float | None = None, e2e_ms: float | None = None) -> float:
    """Requests/s meeting every target given (NaN with no target or no successful stream)."""
    if (ttft_ms is None and tpot_ms is None and e2e_ms is None) or not streams:
        return math.nan
    good = sum(1 for m in streams if is_good(m, ttft_ms, tpot_ms, e2e_ms))
    return requests_per_s * good / len(streams)


__all__ = ["LlmRecorder", "METRICS", "PERCENTS", "RateBins", "Samples", "StreamMetrics", "goodput_rps",
           "is_good", "percentile", "stream_metrics"]
