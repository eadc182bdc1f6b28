"""LatencyHistogram against exact percentiles computed from all samples."""
import math
import random

import numpy as np
import pytest

from jupyter_serving.bench.stats import LatencyHistogram


def exact(values, percent):
    # Nearest-rank percentile, the definition the histogram implements.
    return float(np.percentile(np.asarray(values), percent, method="inverted_cdf"))


def filled(values, digits=3):
    h = LatencyHistogram(digits)
    for v in values:
        h.record(v)
    return h


def test_small_values_are_exact():
    rng = random.Random(1)
    values = [rng.randrange(0, 2048) for _ in range(5000)]
    h = filled(values)
    for p in (0, 1, 25, 50, 90, 99, 99.9, 100):
        assert h.percentile(p) == exact(values, p)


@pytest.mark.parametrize("digits", [1, 2, 3])
def test_large_values_within_relative_precision(digits):
    rng = random.Random(digits)
    values = [int(rng.lognormvariate(10, 2)) for _ in range(20000)]  # µs: tens of µs to minutes
    h = filled(values, digits)
    for p in (50, 90, 99, 99.9):
        want = exact(values, p)
        got = h.percentile(p)
        assert want <= got <= want * (1 + 10 ** -digits) + 1, (p, want, got)


def test_min_max_mean_count_are_exact():
    values = [5, 17, 250_000, 3_000_001, 42]
    h = filled(values)
    assert h.count == 5 == len(h)
    assert h.min == 5 and h.max == 3_000_001
    assert h.mean == pytest.approx(sum(values) / 5)
    assert h.percentile(100) == 3_000_001
    assert h.percentile(0) == 5


def test_percentile_never_exceeds_max():
    h = filled([1_000_003])  # lands in a wide bucket; the answer is still the sample itself
    assert h.percentile(50) == 1_000_003
    assert h.percentiles([50, 99]) == {50.0: 1_000_003.0, 99.0: 1_000_003.0}


def test_record_with_count_equals_repeated_records():
    a = LatencyHistogram()
    a.record(12_345, count=10)
    b = filled([12_345] * 10)
    assert a.percentiles([50, 99]) == b.percentiles([50, 99])
    assert a.count == b.count == 10 and a.total == b.total


def test_merge_equals_recording_everything_in_one():
    rng = random.Random(7)
    first = [rng.randrange(1, 10**7) for _ in range(3000)]
    second = [rng.randrange(1, 10**5) for _ in range(3000)]
    merged = filled(first).merge(filled(second))
    whole = filled(first + second)
    assert merged.percentiles([50, 90, 99]) == whole.percentiles([50, 90, 99])
    for attribute in ("count", "min", "max", "total"):
        assert getattr(merged, attribute) == getattr(whole, attribute)


def test_merge_into_empty_and_copy_is_independent():
    source = filled([100, 200, 300])
    empty = LatencyHistogram()
    assert empty.merge(source).percentile(50) == 200
    clone = source.copy()
    clone.record(10**6)
    assert source.count == 3 and clone.count == 4


def test_merge_refuses_other_precision():
    with pytest.raises(ValueError, match="precision"):
        LatencyHistogram(3).merge(LatencyHistogram(2))


def test_empty_histogram_reports_nan():
    h = LatencyHistogram()
    assert math.isnan(h.percentile(50)) and math.isnan(h.mean)
    summary = h.summary_ms()
    assert all(math.isnan(v) for v in summary.values())


def test_summary_in_milliseconds():
    h = filled([1000] * 50 + [2000] * 49 + [50_000])
    s = h.summary_ms()
    assert s["p50_ms"] == 1.0
    assert s["p90_ms"] == 2.0
    assert s["p99_ms"] == 2.0
    assert s["max_ms"] == 50.0
    assert s["mean_ms"] == pytest.approx((50 * 1000 + 49 * 2000 + 50_000) / 100 / 1000)
    assert set(h.summary_ms("lag_")) == {f"lag_{k}_ms" for k in ("p50", "p90", "p99", "max", "mean")}


def test_memory_grows_with_range_not_samples():
    rng = random.Random(3)
    h = filled(rng.randrange(1000, 1_000_000) for _ in range(100_000))
    assert h.count == 100_000
    assert h.bucket_count < 10_000  # 3 digits over 3 decades: a few thousand buckets at most


def test_float_values_are_truncated_to_microseconds():
    h = LatencyHistogram()
    h.record(20_000.9)
    assert h.max == 20_000


@pytest.mark.parametrize("bad", [-1, -0.5])
def test_negative_latency_is_refused(bad):
    with pytest.raises(ValueError):
        LatencyHistogram().record(bad)


@pytest.mark.parametrize("bad", [0, 6])
def test_precision_is_bounded(bad):
    with pytest.raises(ValueError):
        LatencyHistogram(bad)


def test_percentile_out_of_range_is_refused():
    with pytest.raises(ValueError):
        filled([1]).percentile(101)
