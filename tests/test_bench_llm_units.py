"""The LLM benchmark without the backend: vLLM's definitions on synthetic timelines, the sizing, the
server-sent-events reader, and the load generator, `run_llm_bench`, the magic's options and the
widget's LLM mode against tests/fake_sse_server.py (a streaming chat endpoint with known timing)."""
from __future__ import annotations

import asyncio
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from jupyter_serving.bench.llm_stats import (
    LlmRecorder,
    RateBins,
    Samples,
    goodput_rps,
    percentile,
    stream_metrics,
)
from tests.conftest import poll

FAKE_SSE = Path(__file__).with_name("fake_sse_server.py")
MS = 1_000_000  # ns


# -- vLLM's definitions -----------------------------------------------------------------------------

def vllm_metrics(outputs: list[dict], dur_s: float, percents=(50, 90, 99)) -> dict:
    """vLLM's calculate_metrics (vllm/benchmarks/serve.py) restated: ttft/itl/latency in seconds per
    request, output_tokens from usage; TPOT per request with more than one output token; ITLs pooled."""
    ttfts, tpots, itls, e2els, total_out = [], [], [], [], 0
    for o in outputs:
        out = o["output_tokens"]
        total_out += out
        if out > 1:
            tpots.append((o["latency"] - o["ttft"]) / (out - 1))
        itls += o["itl"]
        ttfts.append(o["ttft"])
        e2els.append(o["latency"])
    result = {"request_throughput": len(outputs) / dur_s, "output_throughput": total_out / dur_s}
    for name, values in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2e", e2els)):
        result[f"{name}_mean_ms"] = np.mean(values) * 1000
        result[f"{name}_std_ms"] = np.std(values) * 1000
        for p in percents:
            result[f"{name}_p{p}_ms"] = np.percentile(values, p) * 1000
    return result


def synthetic(seed: int, n: int = 40) -> list[tuple[int, list[int], int | None]]:
    """(start ns, content chunk arrival ns, usage completion tokens) of `n` made-up streams."""
    rng = random.Random(seed)
    streams = []
    for i in range(n):
        start = i * 50 * MS
        t = start + int(rng.uniform(150, 250) * MS)
        chunks = [t]
        for _ in range(rng.randint(0, 30)):
            t += int(rng.expovariate(1 / 20) * MS) if rng.random() > 0.1 else 0  # some share a read
            chunks.append(t)
        usage = len(chunks) * 2 if rng.random() < 0.3 else (None if rng.random() < 0.5 else len(chunks))
        streams.append((start, chunks, usage))
    return streams


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_step_metrics_match_vllm_calculate_metrics(seed):
    recorder = LlmRecorder()
    outputs = []
    for start, chunks, usage in synthetic(seed):
        m = stream_metrics(start, chunks, usage, input_tokens=8)
        recorder.record_stream(m)
        out = usage if usage is not None else len(chunks)
        outputs.append({"ttft": (chunks[0] - start) / 1e9, "latency": (chunks[-1] - start) / 1e9,
                        "itl": [(b - a) / 1e9 for a, b in zip(chunks, chunks[1:])], "output_tokens": out})
    expected = vllm_metrics(outputs, dur_s=2.0)
    ours: dict = {}
    for name, samples in recorder.samples.items():
        ours.update(samples.summary(name))
    for key, value in expected.items():
        if key in ours:
            assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    assert recorder.output_tokens / 2.0 == pytest.approx(expected["output_throughput"])


def test_one_stream_by_hand():
    # sent at 0; first content at 200 ms; then 20 ms apart, two chunks in one read (gap 0)
    chunks = [200 * MS, 220 * MS, 240 * MS, 240 * MS, 260 * MS]
    m = stream_metrics(0, chunks, None, input_tokens=5)
    assert m.ttft_ms == 200 and m.e2e_ms == 260 and m.output_tokens == 5
    assert m.itl_ms == (20, 20, 0, 20)
    assert m.tpot_ms == pytest.approx((260 - 200) / 4)
    # usage wins over the chunk count: 9 tokens in 5 chunks
    assert stream_metrics(0, chunks, 9, 5).tpot_ms == pytest.approx(60 / 8)
    # one token: no TPOT (vLLM leaves it out; goodput counts it as 0)
    single = stream_metrics(0, [200 * MS], None, 5)
    assert single.tpot_ms is None and single.itl_ms == ()
    assert stream_metrics(0, [], 3, 5) is None  # no content: a failed request


def test_percentile_is_numpys_linear_interpolation():
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101):
        values = sorted(rng.uniform(0, 100) for _ in range(n))
        for p in (0, 1, 25, 50, 90, 99, 99.9, 100):
            assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)), rel=1e-12)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_samples_exact_then_reservoir():
    samples = Samples(capacity=1000)
    values = [random.Random(3).gauss(20, 2) for _ in range(200)]
    samples.extend(values)
    assert samples.std == pytest.approx(float(np.std(values)))
    big = Samples(capacity=500)
    data = [float(i % 1000) for i in range(20_000)]
    big.extend(data)
    assert len(big.values) == 500 and big.count == 20_000
    assert big.mean == pytest.approx(float(np.mean(data)))
    assert big.std == pytest.approx(float(np.std(data)), rel=1e-6)
    assert big.percentiles((50.0,))[50.0] == pytest.approx(500, abs=80)  # a uniform sample's median


def test_rate_bins_count_what_arrived_in_the_window():
    bins = RateBins(start_ns=1_000 * MS, bin_ns=10 * MS)
    # a stream that started before the window: 4 chunks, 2 inside it; usage says 8 tokens (2 a chunk)
    bins.add_tokens([990 * MS, 995 * MS, 1_005 * MS, 1_015 * MS], 8)
    bins.add_request(1_016 * MS, 10)
    bins.add_request(999 * MS, 10)  # finished before the window: not counted
    assert bins.window_end(1_027 * MS) == 1_020 * MS
    out, rps, inputs = bins.rates(1_027 * MS)
    assert out == pytest.approx(4 / 0.02) and rps == pytest.approx(1 / 0.02) and inputs == pytest.approx(10 / 0.02)


def test_goodput_is_vllms_all_targets_rule():
    fast = stream_metrics(0, [100 * MS, 110 * MS, 120 * MS], None, 1)   # TTFT 100, TPOT 10
    slow = stream_metrics(0, [300 * MS, 340 * MS], None, 1)             # TTFT 300, TPOT 40
    one = stream_metrics(0, [150 * MS], None, 1)                        # TPOT counts as 0
    streams = [fast, slow, one]
    assert goodput_rps(streams, 3.0, ttft_ms=200) == pytest.approx(2.0)
    assert goodput_rps(streams, 3.0, tpot_ms=20) == pytest.approx(2.0)
    assert goodput_rps(streams, 3.0, ttft_ms=120, tpot_ms=20) == pytest.approx(1.0)
    assert math.isnan(goodput_rps(streams, 3.0))


# -- sizing -------------------------------------------------------------------------------------------

def level(c: int, ttft: float, tpot: float, rps: float, **extra) -> dict:
    row = {"mode": "closed", "concurrency": c, "requests_per_s": rps, "output_tokens_per_s": rps * 50,
           "total_tokens_per_s": rps * 60, "ttft_p90_ms": ttft, "tpot_p90_ms": tpot, "e2e_mean_ms": ttft + 49 * tpot,
           "input_tokens_mean": 10.0, "output_tokens_mean": 50.0, "failure_share": 0.0, "client_saturated": False,
           "successes": 100}
    return {**row, **extra}


def test_pt_sizing_from_levels():
    from jupyter_serving.bench.llm_sizing import recommend_pt
    from jupyter_serving.core.rules import PT_TOKENS_PER_UNIT_PER_S

    rows = [level(1, 200, 20, 1.0), level(2, 220, 22, 1.9), level(4, 260, 30, 3.5),
            level(8, 600, 45, 5.0, failure_share=0.2)]
    rec = recommend_pt(rows, 12, ttft_ms=300, tpot_ms=25, current_units=2)
    assert rec.concurrency == 2 and rec.meeting == (1, 2) and 8 in rec.rejected
    assert rec.needed_tokens_per_s == pytest.approx(12 * 60) and rec.needed_output_tokens_per_s == pytest.approx(600)
    assert rec.units == math.ceil(720 / PT_TOKENS_PER_UNIT_PER_S) == 8
    assert rec.in_flight == pytest.approx(12 * (220 + 49 * 22) / 1000)
    assert rec.served_entity_changes() == {"provisioned_model_units": 8}
    text = str(rec)
    assert "ceil(720.0 / 100 tokens/s per unit) = 8" in text and "model-specific throughput band" in text
    assert "The endpoint has 2 unit(s) now" in text and "90%" not in text
    assert any("streams in flight" in w for w in rec.warnings)  # 13.4 in flight > tested 2
    # no latency target: the highest clean level
    assert recommend_pt(rows, 1).concurrency == 4


def test_pt_sizing_when_no_level_meets_the_targets():
    from jupyter_serving.bench.llm_sizing import recommend_pt

    rec = recommend_pt([level(1, 200, 20, 1.0), level(2, 250, 22, 1.9)], 1, ttft_ms=100)
    assert rec.concurrency is None and rec.meeting == ()
    assert any("No tested concurrency met p90 TTFT ≤ 100 ms" in w for w in rec.warnings)
    with pytest.raises(ValueError, match="every level was rejected"):
        recommend_pt([level(1, 200, 20, 1.0, client_saturated=True)], 1)
    with pytest.raises(ValueError, match="positive"):
        recommend_pt([level(1, 200, 20, 1.0)], 0)


# -- the SSE reader --------------------------------------------------------------------------------------

class _Listener:
    def __init__(self):
        self.answers = []

    def on_response(self, conn, now_ns):
        self.answers.append(now_ns)

    def on_connection_lost(self, conn, exc):
        pass


def _parse(pieces: list[bytes]):
    from jupyter_serving.bench.llm_client import StreamConnection

    async def run():
        conn = StreamConnection(_Listener())
        conn.transport = SimpleNamespace(write=lambda data: None, abort=lambda: None)
        conn.start(b"", 0, 0, True, 3)
        for piece in pieces:
            conn.data_received(piece)
        return conn

    return asyncio.run(run())


def _chunked(body: bytes, cut: int = 7) -> list[bytes]:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    wire = head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    return [wire[i:i + cut] for i in range(0, len(wire), cut)]


def test_sse_reader_across_reads_lines_and_dialects():
    def delta(text):
        return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})
    body = ("data: " + json.dumps({"choices": [{"delta": {"role": "assistant", "content": ""}}]}) + "\n\n"
            ": keep-alive comment\n\n"
            f"data: {delta('Hel')}\r\n\r\n"
            f"event: message\ndata: {delta('lo')}\n\n"
            'data: {"type": "response.output_text.delta", "delta": " there"}\n\n'
            'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],'
            ' "usage": {"prompt_tokens": 4, "completion_tokens": 7}}\n\n'
            "data: [DONE]\n\n").encode()
    conn = _parse(_chunked(body))
    assert len(conn.chunk_ns) == 3  # the empty preamble and the usage chunk carry no content
    assert conn.usage == (4, 7) and conn.done and conn.failure() is None


def test_sse_reader_failures():
    error = _parse(_chunked(b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
                            b'data: {"error_code": "INTERNAL_ERROR", "message": "boom"}\n\n'))
    assert error.failure()[0] == "stream" and "boom" in error.failure()[1]
    empty = _parse(_chunked(b"data: [DONE]\n\n"))
    assert empty.failure() == ("empty", "the stream carried no content")
    body = b'{"choices": [{"message": {"content": "whole"}}]}'
    plain = _parse([b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body])
    assert plain.failure()[0] == "not streamed" and b"whole" in plain.error_body


def test_requests_are_streaming_chat_bodies_with_synthetic_prompts():
    from jupyter_serving.bench.llm_client import build_llm_target, synthetic_prompts
    from jupyter_serving.core.tokens import count_tokens

    prompts = synthetic_prompts(64, count=4, seed=1)
    assert len(set(prompts)) == 4 and all(len(p.split()) == 64 and count_tokens(p) == 64 for p in prompts)
    target = build_llm_target("http://127.0.0.1:1", "tok", "my llm", prompt_tokens=16, max_tokens=5,
                              custom_inputs={"ttft_ms": 200})
    head, _, body = target.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /serving-endpoints/my%20llm/invocations HTTP/1.1")
    assert b"Accept: text/event-stream" in head and b"Authorization: Bearer tok" in head
    sent = json.loads(body)
    assert sent["stream"] is True and sent["max_tokens"] == 5 and sent["custom_inputs"] == {"ttft_ms": 200}
    assert len(sent["messages"][0]["content"].split()) == 16 and target.input_tokens[0] == 16
    openai = build_llm_target("http://127.0.0.1:1", None, "m", prompt_tokens=2, max_tokens=1, openai=True)
    head, _, body = openai.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /serving-endpoints/chat/completions ") and json.loads(body)["model"] == "m"
    from jupyter_serving.bench.target import TargetNotAllowed

    with pytest.raises(TargetNotAllowed):
        build_llm_target("http://example.com", None, "m", prompt_tokens=2, max_tokens=1)


# -- against the fake streaming server ---------------------------------------------------------------------

class FakeSse:
    def __init__(self, *args: str):
        self.process = subprocess.Popen([sys.executable, str(FAKE_SSE), "--port", "0", *args],
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("LISTENING"), line
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.process.stdout.close()


@pytest.fixture(scope="module")
def sse():
    server = FakeSse()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sse_limited():
    server = FakeSse("--max-concurrency", "1", "--no-usage")
    yield server
    server.stop()


PACED = {"ttft_ms": 100, "itl_ms": 10, "tokens": 12}


def test_closed_loop_measures_the_known_pacing(sse):
    from jupyter_serving.bench.llm_runner import llm_sweep

    frame = llm_sweep(sse.url, "t", "fake", concurrency=[1, 2], prompt_tokens=8, max_tokens=12,
                      custom_inputs=PACED, duration=1.5, warmup=0.2)
    for row in frame.to_dict("records"):
        assert row["error_count"] == 0 and row["rate_limited"] == 0 and row["successes"] >= 4, row
        # the fake server's own timers (uvloop: millisecond ticks) run up to ~1 ms late
        assert 100 <= row["ttft_p50_ms"] <= 110 and 10 <= row["itl_p50_ms"] <= 11.5, row
        assert row["tpot_p50_ms"] == pytest.approx(row["itl_mean_ms"], rel=0.1)
        assert row["output_tokens_mean"] == 12 and row["input_tokens_mean"] == 8
        e2e = row["e2e_mean_ms"] / 1000
        assert row["requests_per_s"] == pytest.approx(row["concurrency"] / e2e, rel=0.2), row
        assert row["output_tokens_per_s"] == pytest.approx(12 * row["requests_per_s"], rel=0.2), row


def test_requests_mode_measures_exactly_n(sse):
    from jupyter_serving.bench.llm_runner import llm_sweep

    frame = llm_sweep(sse.url, None, "fake", concurrency=[3], prompt_tokens=4, max_tokens=4,
                      custom_inputs={"ttft_ms": 20, "itl_ms": 5}, requests=7, warmup=0.0)
    (row,) = frame.to_dict("records")
    assert row["requests"] == 7 and row["successes"] == 7 and row["incomplete"] == 0


def test_open_loop_latency_counts_from_the_schedule(sse):
    from jupyter_serving.bench.llm_runner import llm_sweep

    frame = llm_sweep(sse.url, None, "fake", rate=[8], arrival="uniform", prompt_tokens=4, max_tokens=5,
                      custom_inputs={"ttft_ms": 50, "itl_ms": 10}, duration=1.5, warmup=0.2)
    (row,) = frame.to_dict("records")
    assert row["mode"] == "open" and row["target_rate"] == 8
    assert 10 <= row["requests"] <= 14 and row["successes"] == row["requests"], row
    assert 50 <= row["ttft_p50_ms"] <= 60 and row["lag_p99_ms"] < 25, row
    assert row["requests_per_s"] == pytest.approx(8, rel=0.25)


def test_429_counted_apart_and_failures_by_kind(sse, sse_limited):
    from jupyter_serving.bench.llm_runner import llm_sweep

    frame = llm_sweep(sse_limited.url, None, "fake", concurrency=[3], prompt_tokens=4, max_tokens=4,
                      custom_inputs={"ttft_ms": 50, "itl_ms": 10}, duration=1.0, warmup=0.1)
    (row,) = frame.to_dict("records")
    assert row["rate_limited"] > 0 and row["error_count"] == 0 and row["successes"] > 0
    assert row["output_tokens_mean"] == 4  # --no-usage: the content chunks counted
    for fail, kind in (("json", "not streamed"), ("error", "stream")):
        frame = llm_sweep(sse.url, None, "fake", concurrency=[1], prompt_tokens=4, max_tokens=4,
                          custom_inputs={"fail": fail, "itl_ms": 1}, duration=0.5, warmup=0.0)
        (row,) = frame.to_dict("records")
        assert row["successes"] == 0 and set(row["errors"]) == {kind}, row
        assert row["error_sample"].startswith(kind)


def test_stop_ends_a_long_level_promptly(sse):
    from jupyter_serving.bench.llm_runner import llm_sweep
    from jupyter_serving.bench.runner import BenchmarkJob

    job = BenchmarkJob(llm_sweep, sse.url, None, "fake", concurrency=[2, 4], prompt_tokens=4, max_tokens=50,
                       custom_inputs={"ttft_ms": 10, "itl_ms": 20}, duration=60.0, warmup=0.1)
    job.start()
    started = time.monotonic()
    job.stop()
    frame = job.result(timeout=10)
    assert time.monotonic() - started < 3
    assert len(frame) == 1 and bool(frame["interrupted"].iloc[0])


def test_stop_during_the_drain_ends_it_too(sse):
    """The window (0.2 s) ends long before its 5 s streams do; Stop, 1 s in, cuts the drain short."""
    from jupyter_serving.bench.llm_loadgen import run_llm_step
    from jupyter_serving.bench.llm_runner import llm_target

    target = llm_target(sse.url, None, "fake", prompt_tokens=4, max_tokens=100,
                        custom_inputs={"ttft_ms": 10, "itl_ms": 50, "tokens": 100})

    async def run():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        return await run_llm_step(target, concurrency=2, duration_s=0.2, warmup_s=0.0, stop=stop)

    started = time.monotonic()
    result = asyncio.run(run())
    assert time.monotonic() - started < 3.0
    assert result.interrupted and result.incomplete == 2 and result.successes == 0


def test_generator_ceiling_is_far_above_what_a_test_needs(sse):
    """No delay: the server writes a whole 256-token answer at once, so the client's parsing is the limit."""
    from jupyter_serving.bench.llm_runner import llm_sweep

    frame = llm_sweep(sse.url, None, "fake", concurrency=[4], prompt_tokens=4, max_tokens=256, duration=1.0,
                      warmup=0.2)
    (row,) = frame.to_dict("records")
    assert row["output_tokens_per_s"] > 5_000, row
    assert row["output_tokens_mean"] == 256


def test_chart_has_three_panels_with_legends_below(sse):
    from jupyter_serving.bench import llm_plots, plots
    from jupyter_serving.bench.llm_runner import llm_sweep

    frame = llm_sweep(sse.url, None, "fake", concurrency=[1, 2], prompt_tokens=4, max_tokens=4,
                      custom_inputs={"ttft_ms": 20, "itl_ms": 5}, duration=0.5, warmup=0.0)
    fig = llm_plots.llm_figure(frame, title="t", target_ttft_ms=100, target_tpot_ms=8, target_output_tps=300)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["Time to first token", "Inter-token latency", "Token throughput"]
    for ax in axes:
        legend = ax.get_legend()
        assert legend is not None and legend._loc == 9 and legend.get_bbox_to_anchor()._bbox.y0 < 0  # below
    labels = [t.get_text() for t in axes[2].get_legend().get_texts()]
    assert "Target (300 output tokens/s)" in labels
    assert plots.figure_png(fig).startswith(b"\x89PNG")


# -- notebook, magic and widget glue (a fake client around the fake server) ------------------------------

class FakeLlmClient:
    """What the LLM benchmark uses of api.ServingClient: a PT endpoint `pt` and a classic one `chat`."""

    def __init__(self, url: str, units: int = 2):
        self.host, self.units, self.updates, self.waits = url, units, [], 0
        serving = SimpleNamespace(update_provisioned_throughput_endpoint_config=self._update)
        self.workspace = SimpleNamespace(serving_endpoints=serving, config=SimpleNamespace(
            host=url, authenticate=lambda: {"Authorization": "Bearer dapi-fake"}))

    def _entity(self, name):
        if name == "pt":
            return {"name": "llm-1", "entity_name": "main.ml.llm", "entity_version": "1",
                    "provisioned_model_units": self.units, "burst_scaling_enabled": True}
        return {"name": "llm-1", "entity_name": "main.ml.llm", "entity_version": "1", "workload_size": "Small"}

    def get(self, name):
        from jupyter_serving import api
        from jupyter_serving.core.status import EndpointStatus

        if name not in ("pt", "chat"):
            raise api.ServingError(f"No serving endpoint named '{name}'")
        return EndpointStatus({"name": name, "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
                               "config": {"served_entities": [self._entity(name)], "traffic_config": {
                                   "routes": [{"served_model_name": "llm-1", "traffic_percentage": 100}]}}})

    def _update(self, name, config):
        self.updates.append((name, config))
        self.units = config.served_entities[0].provisioned_model_units

    def wait(self, name, timeout=None, on_progress=None):
        self.waits += 1
        return self.get(name)


def test_run_llm_bench_sizes_and_applies_on_a_pt_endpoint(sse):
    from jupyter_serving.bench.llm_notebook import run_llm_bench

    client = FakeLlmClient(sse.url, units=2)
    ns: dict = {}
    assert run_llm_bench(client, "pt", concurrency="1 2", prompt_tokens=8, max_tokens=12, custom_inputs="$pace",
                         duration=1.0, warmup=0.1, target_rps=20, target_ttft_ms=150, target_tpot_ms=15,
                         apply=True, output="res", user_ns=ns, namespace={"pace": PACED}, show=False) is None
    res = ns["res"]
    frame, rec = res
    assert list(frame["concurrency"]) == [1, 2] and rec.concurrency == 2
    assert rec.units == math.ceil(20 * (8 + 12) / 100) == 4 and rec.current_units == 2
    (name, config), = client.updates
    entity = config.served_entities[0]
    assert name == "pt" and entity.provisioned_model_units == 4 and entity.entity_name == "main.ml.llm"
    assert entity.burst_scaling_enabled is True and entity.name == "llm-1"
    assert config.traffic_config.routes[0].served_model_name == "llm-1" and client.waits == 1
    assert "Applied provisioned_model_units=4" in repr(res) and res.png().startswith(b"\x89PNG")
    assert "goodput req/s" in res._repr_html_()


def test_apply_refused_on_an_endpoint_that_is_not_pt(sse):
    from jupyter_serving.bench.errors import BenchError
    from jupyter_serving.bench.llm_notebook import run_llm_bench

    client = FakeLlmClient(sse.url)
    res = run_llm_bench(client, "chat", concurrency=[1], prompt_tokens=4, max_tokens=4, custom_inputs=PACED,
                        duration=0.5, warmup=0.0, target_rps=1, apply=True, show=False)
    assert res.recommendation is not None and not client.updates
    assert any("not a provisioned-throughput endpoint" in n for n in res.notes)
    with pytest.raises(BenchError, match="not a provisioned-throughput endpoint"):
        res.apply()


def test_magic_options_parse_and_dispatch(sse, monkeypatch):
    from jupyter_serving.bench import notebook as nb
    from jupyter_serving.magics.errors import MagicUsageError
    from jupyter_serving.magics.parsing import CommandParser, split_words

    parser = nb.add_bench_arguments(CommandParser("%serve bench", ""))

    def parse(line):
        return parser.parse_args(split_words(line))

    opts = parse("pt --llm --concurrency 1 2 --requests 3 --prompt-tokens 8 --max-tokens 12 "
                 "--custom-inputs '{\"ttft_ms\": 100, \"itl_ms\": 10}' --target-rps 20 --target-ttft-ms 150 "
                 "--target-tpot-ms 15 --apply -o res")
    ns: dict = {}
    nb.run_bench_args(FakeLlmClient(sse.url), opts, user_ns=ns, show=False)
    assert list(ns["res"].frame["requests"]) == [3, 3] and ns["res"].recommendation.units == 4
    with pytest.raises(MagicUsageError, match="not allowed with argument"):
        parse("pt --llm --duration 2 --requests 3")
    with pytest.raises(nb.BenchError, match="--prompt-tokens is for LLM benchmarks"):
        nb.run_bench_args(None, parse("pt --prompt-tokens 3"))
    with pytest.raises(nb.BenchError, match="--target-qps is for classic benchmarks"):
        nb.run_bench_args(None, parse("pt --llm --target-qps 3"))
    assert parse("pt --rate 5 10").rate == ["5", "10"] and nb._joined(["1,2", "4"]) == "1,2 4"


def test_widget_llm_mode_headless(sse):
    from jupyter_serving.bench.widget import BenchmarkWidget

    client = FakeLlmClient(sse.url, units=1)
    widget = BenchmarkWidget("pt", client, llm={"warmup": 0.1})
    assert widget.llm is None and widget.classic.layout.display is None
    widget.mode.value = "llm"
    panel = widget.llm
    assert widget.classic.layout.display == "none" and panel.layout.display is None
    assert "Run the benchmark with a target" in panel.apply_blocked()
    panel.concurrency.value = "1,2"
    panel.duration.value = 1.0
    panel.prompt_tokens.value, panel.max_tokens.value = 8, 12
    panel.custom_inputs.value = json.dumps(PACED)
    panel.target_rps.value = 10
    started = time.monotonic()
    panel.run_button.click()
    assert time.monotonic() - started < 0.5 and panel.running
    poll(lambda: not panel.running, 60, 0.05, "the LLM run to finish")
    assert panel.error is None, panel.error
    assert list(panel.frame["concurrency"]) == [1, 2] and panel.progress.bar_style == "success"
    assert panel.chart.outputs[0]["data"]["image/png"] and panel.chart_png.startswith(b"\x89PNG")
    assert "TTFT p50 ms" in panel.results.outputs[0]["data"]["text/html"]
    assert panel.recommendation is not None, (panel.card.value, panel.frame.to_dict("records"))
    assert panel.recommendation.units == 2 and "model unit" in panel.card.value
    assert not panel.apply_button.disabled
    panel.target_rps.value = 30  # re-sized from the same measurements
    assert panel.recommendation.units == 6
    panel.apply_button.click()
    poll(lambda: not panel.applying, 30, 0.05, "Apply to finish")
    assert panel.error is None and client.units == 6 and "Applied provisioned_model_units=6" in panel.status.value
    # a classic endpoint: Apply is disabled and says why
    other = BenchmarkWidget("chat", FakeLlmClient(sse.url), mode="llm", llm={"warmup": 0.0, "duration": 0.5,
                                                                             "concurrency": [1]})
    other.llm.custom_inputs.value = json.dumps(PACED)
    other.llm.target_rps.value = 1
    other.llm.run_button.click()
    poll(lambda: not other.llm.running, 60, 0.05, "the run to finish")
    assert other.llm.recommendation is not None and other.llm.apply_button.disabled
    assert "not a provisioned-throughput endpoint" in other.llm.apply_reason.value
