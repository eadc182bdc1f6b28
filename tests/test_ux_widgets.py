"""UX round: what a first-time user tripped on in the widgets and the benchmark (no backend needed:
the bench fake server and scripted clients)."""
from __future__ import annotations

import time

import pytest

from jupyter_serving import api
from jupyter_serving.client.catalog import ModelInfo
from jupyter_serving.core.errors import NotFoundError
from jupyter_serving.core.status import EndpointStatus
from tests.conftest import poll
from tests.fake_kernel import fake_kernel_display
from tests.test_bench_widget import FakeClient, FakeServer

pytestmark = pytest.mark.timeout(120)


class MultiClient(FakeClient):
    """The fake endpoint with two served entities, 50/50."""

    def get(self, name):
        if name != "fake":
            raise api.ServingError(f"No serving endpoint named '{name}'")
        entities = [{"name": n, "entity_name": "m", "entity_version": v, "workload_size": "Small",
                     "scale_to_zero_enabled": False} for n, v in (("a-1", "1"), ("b-2", "2"))]
        return EndpointStatus({
            "name": name, "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            "config": {"served_entities": entities, "traffic_config": {"routes": [
                {"served_model_name": "a-1", "traffic_percentage": 50},
                {"served_model_name": "b-2", "traffic_percentage": 50}]}}})


@pytest.fixture(scope="module")
def server():
    srv = FakeServer("--sleep-ms", "10", "--max-concurrency", "4")
    yield srv
    srv.stop()


def _swept(widget):
    widget.warmup = 0.0
    widget.concurrency.value = "1"
    widget.duration.value = 0.5
    widget.target_qps.value = 10.0
    widget.run_button.click()
    poll(lambda: not widget.running, 30, 0.02, "the sweep")
    return widget


# -- A: benchmark Apply on several entities; %serve bench off the kernel thread -------------------

def test_bench_apply_asks_which_entity_of_several(server):
    from jupyter_serving.bench.widget import BenchmarkWidget

    client = MultiClient(server.url)
    widget = BenchmarkWidget("fake", client)
    assert widget.apply_button.disabled and "target QPS" in widget.apply_reason.value
    _swept(widget)
    assert widget.recommendation is not None, widget.status.value
    assert widget.apply_entity.options == ("a-1", "b-2") and widget.apply_entity.layout.display != "none"
    assert widget.apply_button.disabled  # no entity picked: it would fail with "name one"
    assert "serves several entities" in widget.apply_reason.value and "pick" in widget.apply_button.tooltip
    widget.apply_entity.value = "b-2"
    assert not widget.apply_button.disabled and widget.apply_reason.value == ""
    widget.apply_button.click()
    assert widget.wait(10)
    assert client.updates[-1]["entity"] == "b-2"


def test_bench_apply_defaults_to_the_benchmarked_entity(server):
    from jupyter_serving.bench.widget import BenchmarkWidget

    widget = _swept(BenchmarkWidget("fake", MultiClient(server.url), entity="a-1"))
    assert widget.apply_entity.value == "a-1" and not widget.apply_button.disabled
    single = _swept(BenchmarkWidget("fake", FakeClient(server.url)))
    assert single.apply_entity.layout.display == "none" and not single.apply_button.disabled


def test_serve_bench_runs_off_the_kernel_thread_with_the_result_at_the_end(server, monkeypatch):
    import argparse

    from jupyter_serving.bench.background import BenchRun
    from jupyter_serving.bench.notebook import add_bench_arguments, run_bench_args

    shown = fake_kernel_display(monkeypatch)
    parser = add_bench_arguments(argparse.ArgumentParser())
    opts = parser.parse_args(["fake", "-c", "1,2,4", "-d", "0.6", "--warmup", "0", "--target-qps", "50",
                              "--payload", '{"inputs": [1]}', "-o", "res"])
    ns: dict = {}
    started = time.monotonic()
    assert run_bench_args(FakeClient(server.url), opts, user_ns=ns) is None or True
    assert time.monotonic() - started < 1.0, "the magic blocked the kernel"
    run = ns["res"]
    assert isinstance(run, BenchRun) and not run.done
    assert any(getattr(o, "description", "") == "Stop" for o in shown)  # a Stop button
    frame, rec = run  # reading the handle waits for the result
    assert list(frame["concurrency"]) == [1, 2, 4] and rec is not None
    assert ns["res"] is run.result  # the BenchResult itself, once finished
    final = [o for o in shown if isinstance(o, dict) and "text/html" in o][-1]
    assert "Benchmark of 'fake': 3 step(s)" in final["text/plain"]
    assert "Recommendation" in final["text/html"] and "<img" in final["text/html"]
    # the text promises what exists: .apply() in code, not an Apply button
    assert ".apply()" in final["text/html"] and "Apply sets" not in final["text/html"]


def test_bench_result_of_several_entities_says_how_to_apply(server):
    from jupyter_serving.bench.errors import BenchError
    from jupyter_serving.bench.notebook import run_bench

    result = run_bench(MultiClient(server.url), "fake", concurrency=[1], duration=0.3, warmup=0.0,
                       target_qps=10, payload={"inputs": [1]}, show=False)
    import html

    assert "apply(entity='a-1')" in html.unescape(result._repr_html_())
    with pytest.raises(BenchError, match="serves several entities"):
        result.apply()
    result.apply(entity="b-2")
    assert result.client.updates[-1]["entity"] == "b-2"


# -- B: the create form --------------------------------------------------------------------------

class Offline:
    cloud, is_local, backend, poll_max_interval = "aws", True, "an offline test backend", 0.1

    def names(self):
        return ["taken"]


def _form(model="main.ml.tiny"):
    from jupyter_serving.widgets import CreateEndpointForm, StaticCatalog

    catalog = StaticCatalog({"main.llm.chat": {"1": ModelInfo("main.llm.chat", "1", 15_000_000_000, ("transformers",))},
                             "main.ml.tiny": {"4": ModelInfo("main.ml.tiny", "4", 40_000, ("sklearn",))}})
    form = CreateEndpointForm(Offline(), catalog=catalog, model=model)
    poll(lambda: form.state != "loading" and form.pending == 0, 30, 0.02, "the form")
    return form


def test_gpu_table_is_collapsed_until_a_gpu_matters():
    form = _form()
    assert form.gpu_section.selected_index is None  # a CPU model: the 10-row table stays closed
    form.entities[0].workload_type.value = "GPU_SMALL"
    assert form.gpu_section.selected_index == 0
    form.close()
    big = _form("main.llm.chat")  # needs a GPU: open from the start
    assert big.gpu_section.selected_index == 0
    big.close()


def test_name_error_stands_beside_the_field():
    form = _form()
    form.name.value = "taken"
    assert "already exists" in form.name_note.value and "✖" in form.name_note.value
    form.name.value = "Bad Name!"
    assert "✖" in form.name_note.value and "available" not in form.name_note.value
    form.name.value = "fine-name"
    assert "✔ available" in form.name_note.value
    form.close()


def test_sizes_in_sensible_units():
    from jupyter_serving.widgets._common import format_gb, format_size

    assert format_size(40_000) == "40 KB" and format_size(1_234_567) == "1.23 MB"
    assert format_size(15_000_000_000) == "15 GB" and format_size(512) == "512 B"
    assert format_gb(0.00006) == "< 0.1 GB" and format_gb(18.0) == "18 GB" and format_gb(19.2) == "19.2 GB"
    form = _form()
    form.entities[0].workload_type.value = "GPU_SMALL"
    advice = form.entities[0].advice.value
    assert "0.0 GB" not in advice and "< 0.1 GB" in advice and "40 KB" in advice
    assert "0.0 GB" not in form.gpu_table.value
    form.close()


# -- C: tables and charts ------------------------------------------------------------------------

def _frame():
    import pandas as pd

    return pd.DataFrame({"mode": ["closed"] * 3, "concurrency": [1, 2, 4], "qps": [20.0, 39.0, 60.0],
                         "p50_ms": [50.0, 51.0, 66.0], "p90_ms": [55.0, 58.0, 80.0],
                         "p99_ms": [60.0, 70.0, 95.0], "mean_ms": [50.0, 51.0, 66.0],
                         "successes": [100, 200, 300], "rate_limited": [0, 0, 0], "error_count": [0, 0, 0],
                         "failure_share": [0.0, 0.0, 0.012], "client_saturated": [False] * 3,
                         "interrupted": [False] * 3})


def test_bench_table_has_readable_headings():
    from jupyter_serving.bench.report import table

    shown = table(_frame())
    for heading in ("QPS", "p50 ms", "p99 ms", "errors %", "client saturated"):
        assert heading in shown.columns, heading
    assert shown["errors %"].iloc[2] == 1.2


def test_legends_are_outside_and_axes_contain_every_line():
    from jupyter_serving.bench import plots

    fig = plots.sweep_figure(_frame(), target_qps=30)
    plots.figure_png(fig)  # lays the figure out
    renderer = fig.canvas.get_renderer()
    latency, throughput = fig.axes[0], fig.axes[1]
    for ax in (latency, throughput):
        legend = ax.get_legend()
        assert legend is not None
        box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert box.y1 <= area.y0 + 1, "the legend overlaps the plot area"
    top = throughput.get_ylim()[1]
    for line in throughput.get_lines():
        assert max(line.get_ydata()) <= top, line.get_label()


def test_narrow_traffic_segments_are_named():
    import re

    from jupyter_serving.widgets._common import entity_colors, traffic_bar

    split = {"iris-1": 90, "iris-2": 10}
    visible = re.sub(r'title="[^"]*"', "", traffic_bar(split, entity_colors(list(split))))
    text = re.sub(r"<[^>]+>", " ", visible)
    assert "iris-2 10%" in " ".join(text.split())


# -- D: the traffic editor -----------------------------------------------------------------------

class Scripted:
    cloud, is_local, backend, poll_max_interval = "aws", True, "a scripted backend", 0.2

    def __init__(self, gone=False):
        self.gone = gone

    def get(self, name):
        if self.gone:
            raise NotFoundError(f"No serving endpoint named '{name}'", "")
        entities = [{"name": n, "entity_name": "iris", "entity_version": n[-1], "workload_size": "Small"}
                    for n in ("iris-1", "iris-2", "iris-3")]
        return EndpointStatus({"name": name, "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
                               "config": {"config_version": 1, "served_entities": entities,
                                          "traffic_config": {"routes": [
                                              {"served_model_name": "iris-1", "traffic_percentage": 90},
                                              {"served_model_name": "iris-2", "traffic_percentage": 5},
                                              {"served_model_name": "iris-3", "traffic_percentage": 5}]}}})

    def set_traffic(self, name, routes, wait=True, on_progress=None, **_):
        raise NotFoundError(f"No serving endpoint named '{name}'", "")


def test_a_locked_share_says_why_the_value_went_back():
    from jupyter_serving.widgets import TrafficEditor

    editor = TrafficEditor("ep", Scripted())
    editor.sliders.locks[0].value = True
    editor.sliders.sliders[1].value = 30
    assert editor.new_split["iris-1"] == 90 and editor.new_split["iris-2"] == 10
    notice = editor.sliders.notice_box.value
    assert "iris-1 is locked at 90 %: unlock it to give more than 10 % here" in notice
    editor.sliders.sliders[1].value = 4
    assert editor.sliders.notice == ""


def test_a_deleted_endpoint_disables_the_editor():
    from jupyter_serving.widgets import TrafficEditor

    client = Scripted()
    editor = TrafficEditor("ep", client)
    editor.set_split({"iris-1": 50, "iris-2": 25, "iris-3": 25})
    client.gone = True
    editor.apply_button.click()
    poll(lambda: editor.state == "deleted", 5, 0.01, "the editor to notice")
    assert "no longer exists" in editor.progress.value
    assert editor.apply_button.disabled and editor.reload_button.disabled
    assert all(s.disabled for s in editor.sliders.sliders)
    other = TrafficEditor("ep", Scripted())
    other.client.gone = True
    other.reload_button.click()
    poll(lambda: other.state == "deleted", 5, 0.01, "the reload to notice")
    assert other.apply_button.disabled and "no longer exists" in other.message
