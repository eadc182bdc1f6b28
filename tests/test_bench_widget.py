"""BenchmarkWidget, headless (no browser, no kernel), against the REAL local backend and the sleep
model: driven through its traits and `Button.click()`, as a user would in JupyterLab.

One Small endpoint (4 concurrent requests) for the module. Order matters: the sweep first, then
Stop on a long run, then Apply (which resizes the endpoint to what the sweep recommends).
"""
from __future__ import annotations

import base64
import contextlib
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_serving import api
from jupyter_serving.bench.sizing import DEFAULT_HEADROOM
from tests.backend_helpers import Rest
from tests.conftest import ARTIFACTS, poll, unique
from tests.fake_kernel import fake_kernel_display

pytestmark = pytest.mark.timeout(300)

TARGET_QPS = 100.0


@pytest.fixture(scope="module")
def endpoint(local_backend, sleep_model):
    with sleep_endpoint(sleep_model) as made:
        yield made


@contextlib.contextmanager
def sleep_endpoint(sleep_model):
    """A warmed-up Small endpoint serving the sleep model: (client, name)."""
    client = api.ServingClient.connect()
    name = unique("bench-widget")
    client.create(name, model=sleep_model["name"], version=sleep_model["version"], workload_size="Small",
                  scale_to_zero=False, timeout=180)
    try:
        # A model server's first seconds are slow (imports, first predictions): warm it up first.
        from jupyter_serving.bench.notebook import run_bench

        run_bench(client, name, concurrency=[2], duration=1.0, warmup=1.0, show=False)
        yield client, name
    finally:
        client.delete(name)


@pytest.fixture(scope="module")
def swept(endpoint):
    """A widget that ran a short sweep (1, 2, 4 at 1.5 s per step) with a 100 QPS target; the tests
    that use it only read it."""
    return sweep_widget(endpoint)


def sweep_widget(endpoint):
    from jupyter_serving.bench.widget import BenchmarkWidget

    client, name = endpoint
    widget = BenchmarkWidget(name, client)
    widget.warmup = 0.5
    widget.concurrency.value = "1,2,4"
    widget.duration.value = 1.5
    widget.target_qps.value = TARGET_QPS
    charts_at: list[int] = []  # steps done whenever the chart changed
    widget.chart.observe(lambda change: charts_at.append(widget.steps_done), "outputs")
    started = time.monotonic()
    widget.run_button.click()
    clicked_in = time.monotonic() - started
    running_after_click = widget.running
    poll(lambda: not widget.running, 90, 0.05, "the sweep to finish")
    if widget.frame is not None:
        from jupyter_serving.bench.notebook import table

        print("\n" + table(widget.frame).to_string())
    widget.charts_at = charts_at
    widget.clicked_in = clicked_in
    widget.running_after_click = running_after_click
    return widget


def test_importing_stays_light():
    code = ("import sys, jupyter_serving, jupyter_serving.bench, jupyter_serving.bench.notebook, "
            "jupyter_serving.bench.plots; "
            "print(sorted(m for m in ('ipywidgets', 'matplotlib', 'pandas', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_click_returns_at_once_and_runs_in_the_background(swept):
    assert swept.clicked_in < 0.5, f"the click handler blocked for {swept.clicked_in:.2f} s"
    assert swept.running_after_click


def test_sweep_reaches_the_end(swept):
    assert swept.error is None, swept.error
    assert swept.progress.max == 3 and swept.progress.value == swept.progress.max
    assert swept.progress.bar_style == "success"
    assert list(swept.frame["concurrency"]) == [1, 2, 4]
    assert (swept.frame["successes"] > 0).all() and (swept.frame["rate_limited"] == 0).all()
    assert "Done: 3 step(s)" in swept.status.value
    assert not swept.run_button.disabled and swept.stop_button.disabled
    # the payload came from the endpoint's schema example, params typed
    assert '"sleep_ms": 50.0' in swept.payload.value
    # the results table
    html = swept.results.outputs[0]["data"]["text/html"]
    assert "p99 ms" in html and "QPS" in html


def test_chart_updates_live_and_is_an_image(swept):
    assert swept.charts_at[:3] == [1, 2, 3], swept.charts_at  # one new chart per finished step
    (output,) = swept.chart.outputs
    png = base64.b64decode(output["data"]["image/png"])
    assert png.startswith(b"\x89PNG") and png == swept.chart_png
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "bench-widget-chart.png").write_bytes(png)


def test_recommendation_card(swept):
    rec = swept.recommendation
    by_c = {int(r["concurrency"]): r for r in swept.frame.to_dict("records")}
    littles = math.ceil(TARGET_QPS * by_c[1]["mean_ms"] / 1000.0 * DEFAULT_HEADROOM / 4) * 4
    load_test = math.ceil(TARGET_QPS / by_c[4]["qps"]) * 4
    # 100 QPS × ~0.055 s × 1.25 → 8 and ceil(100 / ~70) × 4 → 8 (12 when a busy machine slows the
    # model server past 64 ms): Medium (8-16) either way.
    assert rec.required_concurrency == max(littles, load_test)
    assert rec.workload_size == "Medium" and 8 <= rec.required_concurrency <= 16
    card = swept.card.value
    assert "Recommendation" in card and "Medium" in card and "Little" in card
    assert "ceil(100 / " in card  # the explanation sentences are on the card
    assert not swept.apply_button.disabled
    # changing the target re-sizes from the same measurements, without running again
    swept.target_qps.value = 10.0
    assert swept.recommendation.required_concurrency == 4 and "Small" in swept.card.value
    swept.target_qps.value = TARGET_QPS
    assert swept.recommendation.workload_size == "Medium"


def test_stop_interrupts_a_long_run_promptly(endpoint, swept):
    from jupyter_serving.bench.widget import BenchmarkWidget

    client, name = endpoint
    widget = BenchmarkWidget(name, client, concurrency=[1, 2, 4], duration=30.0, warmup=0.2,
                             payload={"dataframe_split": {"columns": ["x"], "data": [[1.0]]}})
    widget.run_button.click()
    # well inside the measured window (0.2 s warm-up, then ~2 s of the 30 s step)
    poll(lambda: widget.running and widget.progress.value > 2.5 / 30.2, 30, 0.05, "the first step to run")
    started = time.monotonic()
    widget.stop_button.click()
    poll(lambda: not widget.running, 10, 0.02, "the run to stop")
    took = time.monotonic() - started
    assert took < 3.0, f"Stop took {took:.1f} s"
    assert widget.error is None, widget.error
    assert len(widget.frame) == 1 and bool(widget.frame["interrupted"].iloc[0])
    assert int(widget.frame["successes"].iloc[0]) > 0  # the partial step keeps what it measured
    assert widget.progress.bar_style == "warning" and widget.progress.value < widget.progress.max
    assert "Stopped after 1 of 3" in widget.status.value


def test_apply_resizes_the_endpoint_and_it_returns_to_ready(local_backend, sleep_model):
    with sleep_endpoint(sleep_model) as endpoint:  # its own: Apply changes the endpoint and the widget
        _apply_and_check(local_backend, endpoint, sweep_widget(endpoint))


def _apply_and_check(local_backend, endpoint, swept):
    client, name = endpoint
    rest = Rest(local_backend.url, local_backend.token)
    before = rest.get(name)["config"]["served_entities"][0]
    assert before["workload_size"] == "Small"
    swept.apply_button.click()
    assert swept.applying
    poll(lambda: not swept.applying, 180, 0.1, "Apply to finish")
    assert swept.error is None, swept.error
    doc = rest.get(name)
    assert doc["state"] == {"ready": "READY", "config_update": "NOT_UPDATING", "suspend": "NOT_SUSPENDED"}
    after = doc["config"]["served_entities"][0]
    assert after["workload_size"] == "Medium"
    for key in ("name", "entity_name", "entity_version", "scale_to_zero_enabled"):
        assert after.get(key) == before.get(key), key
    assert "min_provisioned_concurrency" not in after or after.get("workload_size") == "Medium"
    assert "Applied workload_size=Medium" in swept.status.value and "Ready" in swept.status.value
    assert "Applied" in swept.card.value
    # the resized endpoint now takes 8 requests at once: no 429 at concurrency 8
    from jupyter_serving.bench import notebook as nb

    result = nb.run_bench(client, name, concurrency=[8], duration=1.0, warmup=0.3, show=False)
    assert int(result.frame["rate_limited"].iloc[0]) == 0 and int(result.frame["successes"].iloc[0]) > 0


# --------------------------------------------------------------------------------------------------
# Without the backend: the notebook glue against the bench fake server (known 20 ms per request).

FAKESERVER = Path(__file__).with_name("fakeserver.py")

class FakeServer:
    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, str(FAKESERVER), "--port", "0", *args],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("LISTENING"), line
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.process.stdout.close()


class FakeClient:
    """What the notebook glue uses of api.ServingClient, with a Small endpoint named `fake`."""

    def __init__(self, url: str):
        from types import SimpleNamespace

        self.host = url
        self.workspace = SimpleNamespace(config=SimpleNamespace(
            host=url, authenticate=lambda: {"Authorization": "Bearer dapi-fake"}))
        self.updates: list[dict] = []

    def get(self, name):
        from jupyter_serving.core.status import EndpointStatus

        if name != "fake":
            raise api.ServingError(f"No serving endpoint named '{name}'")
        return EndpointStatus({
            "name": name, "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            "config": {"served_entities": [{"name": "m-1", "entity_name": "m", "entity_version": "1",
                                            "workload_size": "Small", "scale_to_zero_enabled": False}],
                       "traffic_config": {"routes": [{"served_model_name": "m-1", "traffic_percentage": 100}]}}})

    def openapi(self, name):
        number = {"type": "number", "format": "double"}
        return {"paths": {"/served-models/m-1/invocations": {"post": {"requestBody": {"content": {
            "application/json": {"schema": {"oneOf": [{"type": "object", "properties": {
                "dataframe_split": {"type": "object"},
                "params": {"type": "object", "properties": {
                    "sleep_ms": {**number, "default": "50.0"},
                    "n": {"type": "integer", "default": "3"},
                    "fast": {"type": "boolean", "default": "false"},
                    "label": {"type": "string", "default": "x"}}}},
                "examples": [{"columns": ["x"], "data": [[1.0]]}]}]}}}}}}}}

    def update_config(self, name, **kwargs):
        self.updates.append(kwargs)
        return self.get(name)


@pytest.fixture(scope="module")
def fake():
    server = FakeServer("--sleep-ms", "20", "--max-concurrency", "4")
    yield FakeClient(server.url)
    server.stop()


def test_default_payload_types_the_params_from_the_schema(fake):
    from jupyter_serving.bench.notebook import default_payload

    body = default_payload(fake, "fake")
    assert body == {"dataframe_split": {"columns": ["x"], "data": [[1.0]]},
                    "params": {"sleep_ms": 50.0, "n": 3, "fast": False, "label": "x"}}


def test_run_bench_in_a_kernel_updates_progress_and_chart_live(fake, monkeypatch):
    import IPython.display

    from jupyter_serving.bench.notebook import run_bench

    shown = fake_kernel_display(monkeypatch)
    ns: dict = {"body": {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}}
    result = run_bench(fake, "fake", concurrency="1,2,8", duration=0.6, warmup=0.1, payload="$body",
                       target_qps=50, user_ns=ns)
    images = [o for o in shown if isinstance(o, IPython.display.Image)]
    texts = [o["text/plain"] for o in shown if isinstance(o, dict) and "text/plain" in o]
    assert len(images) == 3  # one chart per finished step
    assert any("Concurrency 8 is above the 4 concurrent requests" in t for t in texts)
    assert any("step 3/3" in t for t in texts)
    frame, rec = result
    assert list(frame["concurrency"]) == [1, 2, 8] and frame["rate_limited"].iloc[2] > 0
    assert 8 in rec.rejected and rec.required_concurrency == 4  # 50 QPS × ~0.02 s × 1.25 → 4
    assert result.png() == images[-1].data
    # Apply maps the recommendation onto update_config, keeping everything else
    result.apply(fake)
    assert fake.updates[-1] == {"entity": None, "wait": True, "timeout": 1200.0, "on_progress": None,
                                "workload_size": "Small", "scale_to_zero": False}


def test_run_bench_stores_the_result_with_o(fake):
    from jupyter_serving.bench.notebook import run_bench

    ns: dict = {}
    assert run_bench(fake, "fake", concurrency=[1], duration=0.3, warmup=0.0, target_qps=10,
                     payload={"inputs": [1]}, output="res", user_ns=ns, show=False) is None
    assert ns["res"].recommendation.workload_size == "Small"
    assert "Benchmark of 'fake': 1 step(s)" in repr(ns["res"])
