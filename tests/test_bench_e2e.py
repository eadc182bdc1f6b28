"""The benchmark end to end against the REAL local backend and the sleep model (50 ms per call).

One endpoint for the module, provisioned for exactly 8 concurrent requests (min = max = 8), and
one sweep over concurrency 1, 2, 4, 8, 16 through `run_bench` (what `%serve bench` calls):
- the runtime (concurrency-1 median) is the model's 50 ms, within 10 %, allowing for the serving
  stack's own time per request: MLflow's scoring server spends ~3-6 ms of CPU per request (parsing,
  schema checks, serializing) and the gateway ~1 ms, which puts the raw median at ~55 ms on an idle
  2-core machine and 57-62 ms on a busy one. That overhead is measured just before, the same way,
  with requests that sleep 0 ms (it moves with the machine's load, so a fixed 55 ms bound would flake);
- below the limit throughput grows as c / runtime (Little's law for a closed loop), within 15 %;
- at 16 (twice the limit) the endpoint refuses the excess at once with 429;
- the recommendation for 100 QPS is the multiple of 4 that the measured numbers give.
The machine is shared (2 cores): when other processes visibly slowed the levels below the limit
down, those are measured again and the least disturbed measurement counts (see `measured`).
"""
from __future__ import annotations

import math

import pytest

from jupyter_serving import api
from jupyter_serving.bench import notebook as nb
from jupyter_serving.bench import plots
from jupyter_serving.bench.sizing import DEFAULT_HEADROOM
from tests.conftest import ARTIFACTS, unique

pytestmark = pytest.mark.timeout(300)

SLEEP_MS = 50.0
LIMIT = 8
LEVELS = [1, 2, 4, 8, 16]
STEP_S = 2.5
WARMUP_S = 0.5
TARGET_QPS = 100.0


@pytest.fixture(scope="module")
def endpoint(local_backend, sleep_model):
    client = api.ServingClient.connect()
    name = unique("bench-e2e")
    client.create(name, model=sleep_model["name"], version=sleep_model["version"],
                  min_concurrency=LIMIT, max_concurrency=LIMIT, timeout=180)
    yield client, name
    client.delete(name)


NULL_BODY = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}, "params": {"sleep_ms": 0.0}}


def null_overhead_ms(client, name: str, warmup: float) -> float:
    """The stack's own time per request: the concurrency-1 median of requests that sleep 0 ms."""
    result = nb.run_bench(client, name, concurrency=[1], duration=2.0, warmup=warmup, payload=NULL_BODY,
                          show=False)
    (row,) = result.frame.to_dict("records")
    assert row["successes"] > 0 and row["error_count"] == 0, row
    return row["p50_ms"]


QUIET_LEVELS = (1, 2, 4)
MAX_ATTEMPTS = 3


def best_rows(attempts: list[tuple[float, object]]) -> dict[int, dict]:
    """Per concurrency level below the limit, the least disturbed measurement over the attempts
    (lowest median latency; for c=1 with the overhead measured just before it). Load from other
    processes on this shared 2-core machine only ever makes requests slower, never faster (the
    reasoning behind timeit's best-of-N)."""
    best: dict[int, dict] = {}
    for overhead, result in attempts:
        for c, row in rows(result).items():
            if c in QUIET_LEVELS and (c not in best or row["p50_ms"] < best[c]["p50_ms"]):
                best[c] = {**row, "overhead_ms": overhead}
    return best


def disturbances(best: dict[int, dict]) -> list[str]:
    p50, overhead = best[1]["p50_ms"], best[1]["overhead_ms"]
    problems = []
    if p50 > 1.10 * SLEEP_MS + overhead:
        problems.append(f"c=1 p50 {p50:.1f} ms > {SLEEP_MS:g} ms + 10 % + {overhead:.1f} ms overhead")
    for c in QUIET_LEVELS:
        expected = c * 1000.0 / p50
        if abs(best[c]["qps"] - expected) > 0.15 * expected:
            problems.append(f"c={c}: {best[c]['qps']:.1f} QPS, expected {expected:.1f}")
    return problems


def load_average() -> str:
    return open("/proc/loadavg").read().split()[0]


@pytest.fixture(scope="module")
def measured(endpoint) -> dict:
    """The overhead, then the full sweep (the first also warms the model server up). When other
    processes visibly slowed the levels below the limit down, those are measured again (at most
    MAX_ATTEMPTS times in all) and the least disturbed measurement of each level counts."""
    client, name = endpoint
    overhead = null_overhead_ms(client, name, warmup=1.5)
    result = nb.run_bench(client, name, concurrency=LEVELS, duration=STEP_S, warmup=WARMUP_S,
                          target_qps=TARGET_QPS, show=False)
    print(f"\nserving overhead (sleep 0 ms, concurrency 1): p50 {overhead:.2f} ms; load average "
          f"{load_average()}\n{result!r}")
    ARTIFACTS.mkdir(exist_ok=True)
    result.save_chart(ARTIFACTS / "bench-e2e-sweep.png")
    attempts = [(overhead, result)]
    best = best_rows(attempts)
    while (problems := disturbances(best)) and len(attempts) < MAX_ATTEMPTS:
        print(f"disturbed ({'; '.join(problems)}; load average {load_average()}): measuring "
              f"{QUIET_LEVELS} again")
        overhead = null_overhead_ms(client, name, warmup=0.5)
        again = nb.run_bench(client, name, concurrency=list(QUIET_LEVELS), duration=STEP_S,
                             warmup=WARMUP_S, show=False)
        print(f"overhead p50 {overhead:.2f} ms\n{nb.table(again.frame).to_string()}")
        attempts.append((overhead, again))
        best = best_rows(attempts)
    return {"result": result, "best": best, "attempts": len(attempts)}


@pytest.fixture(scope="module")
def bench(measured):
    return measured["result"]


@pytest.fixture(scope="module")
def best(measured) -> dict[int, dict]:
    return measured["best"]


def rows(result) -> dict[int, dict]:
    return {int(r["concurrency"]): r for r in result.frame.to_dict("records")}


def share_429(row: dict) -> float:
    total = row["successes"] + row["rate_limited"] + row["error_count"]
    return row["rate_limited"] / total


def test_default_payload_is_the_schema_example_with_typed_params(endpoint):
    client, name = endpoint
    body = nb.default_payload(client, name)
    assert body["dataframe_split"]["columns"] == ["x"]
    # The schema carries the params default as the string "50.0"; MLflow would refuse it (400).
    assert body["params"] == {"sleep_ms": 50.0}


def test_every_step_ran_and_nothing_failed_below_the_limit(bench):
    by_c = rows(bench)
    assert sorted(by_c) == LEVELS
    for c in (1, 2, 4, 8):
        row = by_c[c]
        assert row["successes"] > 0, row
        assert row["error_count"] == 0 and row["rate_limited"] == 0, (c, row["errors"], row["error_sample"])
        assert not row["client_saturated"], row
    assert not bench.interrupted


def test_runtime_is_the_model_sleep(bench, best):
    assert bench.recommendation.runtime_p50_ms == rows(bench)[1]["p50_ms"]
    p50, overhead_ms = best[1]["p50_ms"], best[1]["overhead_ms"]
    assert p50 >= SLEEP_MS, f"faster than the model sleeps: {p50:.1f} ms"
    assert p50 <= 1.10 * SLEEP_MS + overhead_ms, (
        f"concurrency-1 p50 {p50:.1f} ms: more than {SLEEP_MS:g} ms + 10 % + the serving stack's "
        f"{overhead_ms:.1f} ms")


@pytest.mark.parametrize("c", [1, 2, 4])
def test_throughput_grows_as_concurrency_over_runtime(best, c):
    runtime_s = best[1]["p50_ms"] / 1000.0
    expected = c / runtime_s
    qps = best[c]["qps"]
    assert abs(qps - expected) <= 0.15 * expected, f"c={c}: {qps:.1f} QPS, expected {expected:.1f}"


def test_429_share_rises_beyond_the_limit(bench):
    by_c = rows(bench)
    assert share_429(by_c[LIMIT]) == 0.0
    over = share_429(by_c[2 * LIMIT])
    assert over > 0.5, f"429 share at c={2 * LIMIT}: {over:.1%}"
    # The endpoint still serves its 8 slots: throughput stays near 8 / runtime, never 16 / runtime.
    runtime_s = by_c[1]["p50_ms"] / 1000.0
    assert by_c[2 * LIMIT]["qps"] <= 1.15 * LIMIT / runtime_s
    assert 2 * LIMIT in bench.recommendation.rejected


def test_recommendation_is_the_expected_multiple_of_4(bench):
    rec = bench.recommendation
    by_c = rows(bench)
    # Little's law from the measured mean runtime, with the default 25 % headroom ...
    in_flight = TARGET_QPS * by_c[1]["mean_ms"] / 1000.0
    littles = math.ceil(in_flight * DEFAULT_HEADROOM / 4) * 4
    # ... and Databricks' rule: blocks of 4 at the QPS measured at concurrency 4.
    load_test = math.ceil(TARGET_QPS / by_c[4]["qps"]) * 4
    expected = max(littles, load_test)
    assert rec.littles_law_concurrency == pytest.approx(in_flight)
    assert (rec.headroom_concurrency, rec.load_test_concurrency) == (littles, load_test)
    assert rec.required_concurrency == expected
    # 100 QPS × ~0.055-0.062 s = ~6 in flight, × 1.25 = ~7.5 → 8; 100 / ~65-72 QPS at 4 → 2 blocks
    # → 8 (12 when a busy machine pushes the mean past 64 ms or QPS at 4 under 50): Medium (8-16).
    assert rec.workload_size == "Medium" and 8 <= expected <= 16
    assert rec.served_entity_config() == {"workload_size": "Medium", "scale_to_zero_enabled": False}
    assert nb.config_changes(rec) == {"workload_size": "Medium", "scale_to_zero": False}
    assert any("Little's law" in s for s in rec.explanation)


def test_charts_are_labelled(bench):
    lat = plots.plot_latency(bench.frame, p99_target_ms=100)
    assert lat.get_ylabel() == "Latency (ms)"
    assert "concurrency" in lat.get_xlabel().lower()
    labels = [t.get_text() for t in lat.get_legend().get_texts()]
    assert {"p50 (median)", "p90", "p99"} <= set(labels) and any("target" in t for t in labels)
    thr = plots.plot_throughput(bench.frame, target_qps=TARGET_QPS)
    assert "requests/s" in thr.get_ylabel()
    labels = [t.get_text() for t in thr.get_legend().get_texts()]
    assert any("429" in t for t in labels) and any("Ideal" in t for t in labels)
    assert bench.png().startswith(b"\x89PNG")
    assert "<img" in bench._repr_html_() and "Recommendation" in bench._repr_html_()


def test_open_loop_rate(endpoint):
    client, name = endpoint
    result = nb.run_bench(client, name, rate=30, arrival="uniform", duration=2.0, warmup=0.5, show=False)
    (row,) = result.frame.to_dict("records")
    assert row["mode"] == "open" and row["target_rate"] == 30 and result.recommendation is None
    assert abs(row["qps"] - 30) <= 0.15 * 30, row
    # ~1.8 requests in flight on average; only a stall of the (shared) machine could push one
    # request past the 8 slots.
    assert row["rate_limited"] <= 0.02 * row["successes"] and row["error_count"] == 0, row


def test_serve_bench_magic_stores_the_result(endpoint):
    from tests.magic_helpers import ok, one_line_error, run, shell

    _, name = endpoint
    ip = shell()
    ok(ip, f"%serve bench {name} --target-qps 10 --concurrency 1 --duration 1 --warmup 0.2 -o res")
    frame, rec = ip.user_ns["res"]
    assert list(frame["concurrency"]) == [1] and rec.required_concurrency == 4
    assert rec.workload_size == "Small"
    assert "not an integer" in one_line_error(run(ip, f"%serve bench {name} --concurrency 1,x"))


def test_bad_options_are_one_line_errors(endpoint):
    client, name = endpoint
    with pytest.raises(nb.BenchError, match="not an integer"):
        nb.run_bench(client, name, concurrency="1,x", show=False)
    with pytest.raises(nb.BenchError, match="target QPS must be positive"):
        nb.run_bench(client, name, target_qps=-1, show=False)
    with pytest.raises(api.ServingError, match="No serving endpoint"):
        nb.run_bench(client, "no-such-endpoint", show=False)
