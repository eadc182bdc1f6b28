"""Sizing from sweep steps: Little's law, the load-test rule, sizes, latency targets, scale to zero."""
import math

import pandas as pd
import pytest

from jupyter_serving.bench.sizing import (
    Recommendation,
    StepSummary,
    recommend,
    round_up_to_step,
    summarize_steps,
)
from jupyter_serving.core.rules import normalize_config


def step(c, qps, p50, p99, mean=None, failure_share=0.0, saturated=False, successes=1000, mode="closed"):
    return {"mode": mode, "concurrency": c, "qps": qps, "p50_ms": p50, "p99_ms": p99,
            "mean_ms": p50 if mean is None else mean, "failure_share": failure_share,
            "client_saturated": saturated, "successes": successes}


# A 50 ms model on a Small endpoint (cap 4): linear up to 4, 429s beyond.
SMALL_SWEEP = [
    step(1, 19.6, 50.0, 60.0, mean=51.0),
    step(2, 39.0, 51.0, 65.0, mean=52.0),
    step(4, 78.0, 51.0, 70.0, mean=52.0),
    step(8, 80.0, 51.0, 72.0, failure_share=0.5),
]


def assert_valid_entity(rec: Recommendation, custom=False):
    entity = {"entity_name": "main.ml.model", "entity_version": "1", **rec.served_entity_config(custom)}
    normalize_config({"served_entities": [entity]})  # raises RuleViolation if Databricks would refuse it


def test_medium_from_little_and_load_test_agreeing():
    rec = recommend(SMALL_SWEEP, target_qps=100)
    assert rec.runtime_p50_ms == 50.0 and rec.runtime_mean_ms == 51.0 and rec.runtime_concurrency == 1
    assert rec.littles_law_concurrency == pytest.approx(5.1)      # 100 QPS × 0.051 s
    assert rec.headroom_concurrency == 8                           # 5.1 × 1.25 = 6.375 → 8
    assert rec.qps_at_4 == 78.0
    assert rec.load_test_concurrency == 8                          # ceil(100 / 78) = 2 blocks of 4
    assert rec.required_concurrency == 8
    assert rec.workload_size == "Medium"
    assert (rec.min_provisioned_concurrency, rec.max_provisioned_concurrency) == (8, 16)
    assert rec.served_entity_config() == {"workload_size": "Medium", "scale_to_zero_enabled": False}
    assert rec.served_entity_config(custom=True) == {
        "min_provisioned_concurrency": 8, "max_provisioned_concurrency": 8, "scale_to_zero_enabled": False}
    assert_valid_entity(rec)
    assert_valid_entity(rec, custom=True)


def test_explanation_states_each_number():
    text = "\n".join(recommend(SMALL_SWEEP, target_qps=100).explanation)
    assert "50.0 ms at the median (mean 51.0 ms)" in text
    assert "Little's law" in text and "100 QPS × 0.0510 s = 5.10" in text
    assert "25% headroom" in text and ": 8." in text
    assert "ceil(100 / 78.0) = 2 block(s) of 4 = 8" in text
    assert "both estimates agree" in text
    assert "Medium workload size (8-16 concurrent requests)" in text
    assert "concurrency 8 is left out" in text and "50%" in text
    assert "Scale to zero: off" in text


def test_small_for_low_traffic():
    rec = recommend(SMALL_SWEEP, target_qps=50)  # 50 × 0.051 × 1.25 = 3.19 → 4; ceil(50/78) = 1 → 4
    assert (rec.headroom_concurrency, rec.load_test_concurrency, rec.required_concurrency) == (4, 4, 4)
    assert rec.workload_size == "Small"
    assert rec.served_entity_config() == {"workload_size": "Small", "scale_to_zero_enabled": False}


def test_load_test_rule_governs_when_scaling_is_poor():
    steps = [step(1, 100.0, 10.0, 12.0), step(2, 150.0, 13.0, 20.0), step(4, 200.0, 20.0, 30.0)]
    rec = recommend(steps, target_qps=1000)
    assert rec.headroom_concurrency == 16                # 1000 × 0.010 × 1.25 = 12.5 → 16
    assert rec.load_test_concurrency == 20               # ceil(1000 / 200) = 5 blocks of 4
    assert rec.required_concurrency == 20
    assert rec.workload_size == "Large"
    assert "(the load-test rule)" in "\n".join(rec.explanation)
    assert_valid_entity(rec)


def test_littles_law_governs_when_concurrency_scales_super_linearly():
    steps = [step(1, 10.0, 100.0, 110.0), step(4, 60.0, 66.0, 90.0)]
    rec = recommend(steps, target_qps=100)
    assert rec.headroom_concurrency == 16                # 100 × 0.1 × 1.25 = 12.5 → 16
    assert rec.load_test_concurrency == 8                # ceil(100 / 60) = 2 blocks
    assert rec.required_concurrency == 16
    assert rec.workload_size == "Medium"
    assert "(Little's law)" in "\n".join(rec.explanation)


def test_custom_range_above_large():
    rec = recommend(SMALL_SWEEP, target_qps=2000)
    assert rec.headroom_concurrency == 128               # 2000 × 0.051 × 1.25 = 127.5 → 128
    assert rec.load_test_concurrency == 104              # ceil(2000 / 78) = 26 blocks of 4
    assert rec.required_concurrency == 128
    assert rec.workload_size is None
    assert rec.served_entity_config() == {
        "min_provisioned_concurrency": 4, "max_provisioned_concurrency": 128, "scale_to_zero_enabled": False}
    assert_valid_entity(rec)
    assert any("Tested up to concurrency 8" in w for w in rec.warnings)


@pytest.mark.parametrize("target,headroom,expected", [
    (80, 1.25, 8),     # 80 × 0.05 = 4.0 × 1.25 = 5 → 8
    (80, 1.0, 4),      # exactly 4 stays 4
    (81, 1.0, 8),      # 4.05 → 8
    (1, 1.25, 4),      # never below one block
])
def test_rounding_to_blocks_of_four(target, headroom, expected):
    rec = recommend([step(1, 20.0, 50.0, 55.0)], target_qps=target, headroom=headroom)
    assert rec.headroom_concurrency == expected


def test_float_noise_does_not_add_a_block():
    assert 100 * 0.28 > 28  # 28.000000000000004
    assert round_up_to_step(100 * 0.28) == 28
    rec = recommend([step(1, 3.5, 280.0, 300.0)], target_qps=100, headroom=1.0)
    assert rec.headroom_concurrency == 28
    assert rec.workload_size == "Large"


def test_headroom_changes_the_estimate():
    low = recommend(SMALL_SWEEP, target_qps=150, headroom=1.0)    # 7.65 → 8
    high = recommend(SMALL_SWEEP, target_qps=150, headroom=2.0)   # 15.3 → 16
    assert (low.headroom_concurrency, high.headroom_concurrency) == (8, 16)


def test_p99_target_lowest_and_highest_meeting_levels():
    rec = recommend(SMALL_SWEEP, target_qps=100, p99_target_ms=66)
    assert (rec.lowest_concurrency_meeting_p99, rec.highest_concurrency_meeting_p99) == (1, 2)
    text = "\n".join(rec.explanation)
    assert "met at concurrency 1, 2 (lowest 1, highest 2)" in text
    assert not any("p99" in w for w in rec.warnings)


def test_p99_target_missed_at_four_loads_each_block_less():
    # c=4 has p99 70 ms > 66: a block of 4 may only carry c=2's 39 QPS → ceil(100 / 39) = 3 blocks.
    rec = recommend(SMALL_SWEEP, target_qps=100, p99_target_ms=66)
    assert rec.load_test_concurrency == 8
    assert rec.latency_bound_concurrency == 12
    assert rec.required_concurrency == 12
    assert rec.workload_size == "Medium"
    text = "\n".join(rec.explanation)
    assert "ceil(100 / 39.0) = 3 block(s) = 12" in text
    assert "(the latency target)" in text
    assert_valid_entity(rec, custom=True)
    assert rec.served_entity_config(custom=True)["max_provisioned_concurrency"] == 12


def test_p99_target_met_at_four_adds_no_bound():
    rec = recommend(SMALL_SWEEP, target_qps=100, p99_target_ms=70)
    assert rec.latency_bound_concurrency is None and rec.required_concurrency == 8


def test_p99_target_met_everywhere():
    rec = recommend(SMALL_SWEEP, target_qps=100, p99_target_ms=500)
    assert (rec.lowest_concurrency_meeting_p99, rec.highest_concurrency_meeting_p99) == (1, 4)
    assert rec.latency_bound_concurrency is None


def test_p99_target_unreachable_warns():
    rec = recommend(SMALL_SWEEP, target_qps=100, p99_target_ms=40)
    assert rec.lowest_concurrency_meeting_p99 is None and rec.highest_concurrency_meeting_p99 is None
    [warning] = rec.warnings
    assert "No tested concurrency met the p99 target of 40 ms" in warning
    assert "best: 60.0 ms at concurrency 1" in warning


def test_rejected_steps_are_ignored_for_latency():
    # c=8's 429s make it fast (72 ms p99 is still > 66), but a rejected step never qualifies.
    steps = SMALL_SWEEP[:3] + [step(8, 80.0, 5.0, 6.0, failure_share=0.5)]
    rec = recommend(steps, target_qps=100, p99_target_ms=10)
    assert rec.highest_concurrency_meeting_p99 is None
    assert 8 in rec.rejected


@pytest.mark.parametrize("share,rejected", [(0.0, False), (0.05, False), (0.051, True), (0.9, True)])
def test_failure_share_limit_is_five_percent(share, rejected):
    steps = [step(1, 20.0, 50.0, 55.0), step(4, 78.0, 51.0, 70.0, failure_share=share)]
    rec = recommend(steps, target_qps=100)
    assert (4 in rec.rejected) is rejected
    assert (rec.load_test_concurrency is None) is rejected


def test_saturated_client_step_is_rejected():
    steps = [step(1, 20.0, 50.0, 55.0), step(4, 78.0, 51.0, 70.0, saturated=True)]
    rec = recommend(steps, target_qps=100)
    assert "saturated" in rec.rejected[4]
    assert rec.load_test_concurrency is None
    assert rec.required_concurrency == 8  # Little's law alone
    assert "rests on Little's law alone" in "\n".join(rec.explanation)


def test_step_without_successes_is_rejected():
    empty = StepSummary.from_mapping(step(1, 0.0, math.nan, math.nan, successes=0))
    assert empty.rejection() == "no successful responses"


def test_runtime_from_lowest_clean_step_when_concurrency_one_is_missing():
    rec = recommend(SMALL_SWEEP[1:], target_qps=100)
    assert rec.runtime_concurrency == 2 and rec.runtime_mean_ms == 52.0
    assert any("No clean concurrency-1 step" in w for w in rec.warnings)


def test_missing_concurrency_four_uses_littles_law_only():
    rec = recommend([step(1, 19.6, 50.0, 60.0, mean=51.0), step(2, 39.0, 51.0, 65.0)], target_qps=100)
    assert rec.qps_at_4 is None and rec.load_test_concurrency is None
    assert rec.required_concurrency == 8
    assert "it was not tested" in "\n".join(rec.explanation)


def test_scale_to_zero_off_for_continuous_traffic():
    rec = recommend(SMALL_SWEEP, target_qps=50)
    assert rec.scale_to_zero is False and rec.min_provisioned_concurrency == 4


def test_scale_to_zero_on_for_idle_traffic_without_latency_target():
    rec = recommend(SMALL_SWEEP, target_qps=50, idle_traffic=True, cold_start_s=6)
    assert rec.scale_to_zero is True
    assert rec.min_provisioned_concurrency == 0
    assert rec.served_entity_config() == {"workload_size": "Small", "scale_to_zero_enabled": True}
    assert "about 6 s" in rec.explanation[-1]
    assert_valid_entity(rec)
    assert_valid_entity(rec, custom=True)


def test_scale_to_zero_off_when_cold_start_breaks_the_latency_target():
    rec = recommend(SMALL_SWEEP, target_qps=50, idle_traffic=True, p99_target_ms=200, cold_start_s=6)
    assert rec.scale_to_zero is False
    assert "far beyond the 200 ms p99 target" in rec.explanation[-1]
    unknown = recommend(SMALL_SWEEP, target_qps=50, idle_traffic=True, p99_target_ms=200)
    assert unknown.scale_to_zero is False and "seconds to minutes" in unknown.explanation[-1]


def test_scale_to_zero_on_when_cold_start_fits_a_loose_target():
    rec = recommend(SMALL_SWEEP, target_qps=50, idle_traffic=True, p99_target_ms=10_000, cold_start_s=6)
    assert rec.scale_to_zero is True


def test_custom_range_with_scale_to_zero_starts_at_zero():
    rec = recommend(SMALL_SWEEP, target_qps=2000, idle_traffic=True)
    assert rec.served_entity_config()["min_provisioned_concurrency"] == 0
    assert_valid_entity(rec)


def test_accepts_dataframe_and_ignores_open_loop_rows():
    rows = SMALL_SWEEP + [step(16, 5.0, 900.0, 2000.0, mode="open")]
    frame = pd.DataFrame(rows)
    rec = recommend(frame, target_qps=100)
    assert rec.tested_concurrency == (1, 2, 4, 8)
    assert rec.required_concurrency == 8
    assert [s.concurrency for s in summarize_steps(frame)] == [1, 2, 4, 8]


def test_nan_failure_share_counts_as_no_failures():
    assert StepSummary.from_mapping(step(1, 20.0, 50.0, 55.0, failure_share=math.nan)).failure_share == 0.0


def test_str_lists_explanation_and_warnings():
    rec = recommend(SMALL_SWEEP, target_qps=2000)
    text = str(rec)
    assert text.splitlines()[0] == rec.explanation[0]
    assert "Warning: Tested up to concurrency 8" in text


@pytest.mark.parametrize("kwargs,match", [
    ({"target_qps": 0}, "target_qps"),
    ({"target_qps": 10, "headroom": 0.9}, "headroom"),
    ({"target_qps": 10, "p99_target_ms": 0}, "p99_target_ms"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        recommend(SMALL_SWEEP, **kwargs)


def test_no_steps_or_all_rejected():
    with pytest.raises(ValueError, match="run sweep"):
        recommend([], target_qps=10)
    with pytest.raises(ValueError, match="every step was rejected"):
        recommend([step(1, 20.0, 50.0, 55.0, failure_share=0.2)], target_qps=10)
