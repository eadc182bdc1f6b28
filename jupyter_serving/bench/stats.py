"""Latency histogram, HDR style: log-linear buckets, bounded relative error, cheap to merge. Pure.

Why not the PyPI package `hdrhistogram`: it works, but its current release declares a runtime
requirement on setuptools>=83, and installing it upgrades setuptools in the user's notebook
environment (removing `pkg_resources`, which some Jupyter-side packages still import). The part
we need is about sixty lines, so it lives here.

Layout (the same as HdrHistogram's): values below `2 * 10**digits` (rounded up to a power of two,
the "sub-bucket count" S) get one bucket each, so they are exact. Above that, every power-of-two
range [2^k, 2^(k+1)) is split into S/2 equal buckets, so a bucket is never wider than
1/(S/2) < 10**-digits of the values in it. Counts live in a dict keyed by bucket index: memory
grows with the number of distinct buckets touched (a few hundred in practice), never with the
number of samples.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

DEFAULT_PERCENTILES = (50.0, 90.0, 99.0)


class LatencyHistogram:
    """Latencies in integer microseconds. `record` is O(1); percentiles walk the buckets once."""

    __slots__ = ("significant_digits", "_bits", "_sub_count", "_half", "_counts", "count",
                 "total", "min", "max")

    def __init__(self, significant_digits: int = 3):
        if not 1 <= significant_digits <= 5:
            raise ValueError(f"significant_digits must be 1 to 5, got {significant_digits}")
        self.significant_digits = significant_digits
        self._bits = math.ceil(math.log2(2 * 10**significant_digits))
        self._sub_count = 1 << self._bits
        self._half = self._sub_count >> 1
        self._counts: dict[int, int] = {}
        self.count = 0
        self.total = 0  # sum of recorded values, for an exact mean
        self.min: int | None = None
        self.max = 0

    # -- recording -------------------------------------------------------------------------------

    def record(self, value_us: int | float, count: int = 1) -> None:
        if value_us < 0:
            raise ValueError(f"latency cannot be negative: {value_us}")
        value = int(value_us)
        if value < self._sub_count:
            index = value
        else:
            shift = value.bit_length() - self._bits
            index = self._sub_count + (shift - 1) * self._half + (value >> shift) - self._half
        self._counts[index] = self._counts.get(index, 0) + count
        self.count += count
        self.total += value * count
        if value > self.max:
            self.max = value
        if self.min is None or value < self.min:
            self.min = value

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        """Add `other`'s samples into this histogram (in place) and return self."""
        if other.significant_digits != self.significant_digits:
            raise ValueError("cannot merge histograms of different precision "
                             f"({self.significant_digits} vs {other.significant_digits} digits)")
        for index, n in other._counts.items():
            self._counts[index] = self._counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        if other.min is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
        return self

    def copy(self) -> LatencyHistogram:
        return LatencyHistogram(self.significant_digits).merge(self)

    # -- reading ---------------------------------------------------------------------------------

    def bucket_bounds(self, index: int) -> tuple[int, int]:
        """Lowest and highest value that land in bucket `index`."""
        if index < self._sub_count:
            return index, index
        offset = index - self._sub_count
        shift = offset // self._half + 1
        low = (offset % self._half + self._half) << shift
        return low, low + (1 << shift) - 1

    def percentiles(self, percents: Iterable[float] = DEFAULT_PERCENTILES) -> dict[float, float]:
        """{percent: value in µs}. A value is its bucket's highest equivalent value (as in
        HdrHistogram), clamped to the recorded min/max so that 0 and 100 are exact. NaN if empty."""
        wanted = sorted(float(p) for p in percents)
        for p in wanted:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"percentile must be within 0..100, got {p}")
        if not self.count:
            return {p: math.nan for p in wanted}
        result: dict[float, float] = {}
        pending = iter(wanted)
        percent = next(pending)
        seen = 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            while percent is not None and seen >= max(1, math.ceil(percent / 100.0 * self.count)):
                value = min(max(self.bucket_bounds(index)[1], self.min), self.max)
                result[percent] = float(value)
                percent = next(pending, None)
            if percent is None:
                break
        return result

    def percentile(self, percent: float) -> float:
        return self.percentiles((percent,))[float(percent)]

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def summary_ms(self, prefix: str = "") -> dict[str, float]:
        """p50/p90/p99/max/mean in milliseconds, keyed `{prefix}p50_ms` etc."""
        p = self.percentiles((50.0, 90.0, 99.0))
        to_ms = 1e-3
        return {
            f"{prefix}p50_ms": p[50.0] * to_ms,
            f"{prefix}p90_ms": p[90.0] * to_ms,
            f"{prefix}p99_ms": p[99.0] * to_ms,
            f"{prefix}max_ms": (self.max * to_ms) if self.count else math.nan,
            f"{prefix}mean_ms": self.mean * to_ms,
        }

    @property
    def bucket_count(self) -> int:
        """Buckets in use: the histogram's memory, which does not grow with the sample count."""
        return len(self._counts)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        if not self.count:
            return "LatencyHistogram(empty)"
        s = self.summary_ms()
        return (f"LatencyHistogram(n={self.count}, p50={s['p50_ms']:.3f} ms, "
                f"p99={s['p99_ms']:.3f} ms, max={s['max_ms']:.3f} ms)")
