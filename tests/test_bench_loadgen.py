"""The load generator against a real loopback server with known behaviour (tests/fakeserver.py, run as
a subprocess): it sleeps a known time per request, answers 429 above a concurrency cap, can queue
like a model server with P workers, and reports its open connections on GET /stats."""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from jupyter_serving.bench import (
    BenchmarkJob,
    LoadTestError,
    TargetNotAllowed,
    open_loop,
    sweep,
    sweep_async,
)
from jupyter_serving.bench.loadgen import step_time_bound
from tests.conftest import poll

RUNTIME_S = 0.020
TOKEN = "dapi-test-token"
PAYLOAD = pd.DataFrame({"x": [1.0, 2.0]})
QUICK = {"duration": 1.0, "warmup": 0.2}


FAKESERVER = Path(__file__).with_name("fakeserver.py")

class FakeServer:
    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, str(FAKESERVER), "--port", "0", *args],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()  # EOF (failure) or "LISTENING <port>"
        if not line.startswith("LISTENING"):
            self.stop()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as response:
            return json.load(response)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()


@pytest.fixture
def start_server():
    servers: list[FakeServer] = []

    def start(*args: str) -> FakeServer:
        servers.append(FakeServer(*args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def sleepy():
    """20 ms per request, no concurrency cap."""
    server = FakeServer("--sleep-ms", str(RUNTIME_S * 1000), "--served-model-name", "sleeper-1")
    yield server
    server.stop()


def no_connections_left(server: FakeServer) -> None:
    poll(lambda: server.stats()["open_connections"] == 1, timeout=10,  # 1: the /stats request itself
         message="the client to close all its connections")


# -- closed loop ---------------------------------------------------------------------------------------

def test_closed_loop_throughput_and_latency_follow_the_runtime(sleepy):
    seen = []
    frame = sweep(sleepy.url, TOKEN, "sleeper", PAYLOAD, concurrency=[1, 4], on_step=seen.append, **QUICK)
    assert list(frame["concurrency"]) == [1, 4]
    assert [s.concurrency for s in seen] == [1, 4]
    for row in frame.to_dict("records"):
        expected_qps = row["concurrency"] / RUNTIME_S  # Little's law
        assert row["qps"] == pytest.approx(expected_qps, rel=0.15)
        assert RUNTIME_S * 1000 <= row["p50_ms"] <= RUNTIME_S * 1000 * 1.15
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["rate_limited"] == 0 and row["error_count"] == 0
        assert row["served_models"] == {"sleeper-1": row["successes"]}
        assert row["failure_share"] == 0.0
        assert not row["client_saturated"] and not row["interrupted"]
        assert row["duration_s"] == pytest.approx(1.0, abs=0.01)


def test_rate_limited_share_rises_above_the_concurrency_cap(start_server):
    server = start_server("--sleep-ms", "20", "--max-concurrency", "4")
    frame = sweep(server.url, TOKEN, "capped", {"inputs": [1]}, concurrency=[2, 8], **QUICK)
    below, above = frame.to_dict("records")
    assert below["rate_limited"] == 0
    assert above["rate_limited"] > 0
    assert above["failure_share"] > 0.3
    # Successes are capped at what 4 concurrent slots deliver, however hard the client pushes.
    assert above["qps"] == pytest.approx(4 / RUNTIME_S, rel=0.15)
    assert above["responses_per_s"] > above["qps"]


def test_served_entity_route_and_header(sleepy):
    frame = sweep(sleepy.url, TOKEN, "sleeper", PAYLOAD, concurrency=[1], entity="blue-2", **QUICK)
    row = frame.iloc[0]
    assert row["served_models"] == {"blue-2": row["successes"]} and row["successes"] > 0


def test_other_errors_are_counted_by_status(start_server):
    server = start_server()
    row = sweep(server.url, TOKEN, "stopped", PAYLOAD, concurrency=[1], **QUICK).iloc[0]
    assert row["successes"] == 0 and row["rate_limited"] == 0
    assert set(row["errors"]) == {"400"} and row["error_count"] > 0
    assert "Endpoint is stopped" in row["error_sample"]


def test_request_timeout_is_counted(start_server):
    server = start_server("--sleep-ms", "2000")
    row = sweep(server.url, TOKEN, "slow", PAYLOAD, concurrency=[1], timeout=0.2, drain=0.2, **QUICK).iloc[0]
    assert row["successes"] == 0
    assert row["errors"].get("timeout", 0) >= 2


def test_duration_bound_holds_against_a_server_that_never_answers(start_server):
    server = start_server("--sleep-ms", "600000")
    started = time.monotonic()
    row = sweep(server.url, TOKEN, "hung", PAYLOAD, concurrency=[2], duration=0.5, warmup=0.1,
                drain=0.3).iloc[0]
    elapsed = time.monotonic() - started
    assert elapsed < step_time_bound(0.5, 0.1, 0.3)
    assert row["successes"] == 0 and row["incomplete"] == 2
    no_connections_left(server)


# -- open loop -----------------------------------------------------------------------------------------

def test_open_loop_below_capacity_sees_the_runtime(sleepy):
    row = open_loop(sleepy.url, TOKEN, "sleeper", PAYLOAD, rate=100, arrival="uniform", **QUICK).iloc[0]
    assert row["mode"] == "open" and row["target_rate"] == 100
    assert row["qps"] == pytest.approx(100, rel=0.15)
    assert RUNTIME_S * 1000 <= row["p50_ms"] <= RUNTIME_S * 1000 * 1.15
    assert row["unsent"] == 0 and row["incomplete"] == 0
    assert row["lag_p99_ms"] < 20


def test_open_loop_latency_includes_server_queueing(start_server):
    # One worker, 20 ms each: capacity 50/s. At 80/s the queue grows by 30 requests a second.
    server = start_server("--sleep-ms", "20", "--parallelism", "1")
    closed = sweep(server.url, TOKEN, "one-worker", PAYLOAD, concurrency=[1], **QUICK).iloc[0]
    opened = open_loop(server.url, TOKEN, "one-worker", PAYLOAD, rate=80, arrival="uniform",
                       drain=3.0, **QUICK).iloc[0]
    assert closed["p50_ms"] <= RUNTIME_S * 1000 * 1.15
    assert opened["p50_ms"] > 5 * closed["p50_ms"]
    assert opened["p99_ms"] > opened["p50_ms"]
    assert opened["qps"] == pytest.approx(1 / RUNTIME_S, rel=0.15)


def test_open_loop_counts_waiting_for_a_connection_no_coordinated_omission(sleepy):
    # Two connections × 20 ms = 100/s; asked for 150/s. A closed loop would report ~20 ms; the
    # open loop counts from each intended send time, so the client-side wait shows.
    row = open_loop(sleepy.url, TOKEN, "sleeper", PAYLOAD, rate=150, arrival="uniform",
                    max_in_flight=2, drain=3.0, **QUICK).iloc[0]
    assert row["concurrency"] == 2
    assert row["p50_ms"] > 5 * RUNTIME_S * 1000
    assert row["qps"] == pytest.approx(2 / RUNTIME_S, rel=0.15)
    assert row["lag_p99_ms"] < 20  # the scheduler itself kept time; the wait is queueing


def test_open_loop_poisson_rate_is_met_on_average(sleepy):
    frame = open_loop(sleepy.url, TOKEN, "sleeper", PAYLOAD, rate=[50, 150], seed=1, **QUICK)
    assert list(frame["target_rate"]) == [50, 150]
    for row in frame.to_dict("records"):
        assert row["qps"] == pytest.approx(row["target_rate"], rel=0.25)  # Poisson: ±√n noise


# -- stopping cleanly ----------------------------------------------------------------------------------

def test_stop_event_ends_the_run_and_closes_connections(start_server):
    server = start_server("--sleep-ms", "5")
    job = BenchmarkJob(sweep, server.url, TOKEN, "m", PAYLOAD, concurrency=[3, 6], duration=60, warmup=0)
    job.start()
    poll(lambda: server.stats()["requests"] > 20, timeout=20, message="load to arrive")
    job.stop()
    assert job.wait(10)
    frame = job.result()
    assert len(frame) == 1 and bool(frame.iloc[0]["interrupted"])
    assert frame.iloc[0]["duration_s"] < 60
    assert len(job.steps) == 1
    no_connections_left(server)


def test_keyboard_interrupt_stops_cleanly_and_propagates(start_server):
    server = start_server("--sleep-ms", "5")
    main = threading.main_thread().ident

    def interrupt_when_loaded():
        poll(lambda: server.stats()["requests"] > 20, timeout=20, message="load to arrive")
        signal.pthread_kill(main, signal.SIGINT)  # what Ctrl-C / "interrupt kernel" does

    helper = threading.Thread(target=interrupt_when_loaded)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep(server.url, TOKEN, "m", PAYLOAD, concurrency=[4], duration=60, warmup=0)
    finally:
        helper.join()
    no_connections_left(server)


def test_cancelling_the_async_sweep_closes_connections(start_server):
    server = start_server("--sleep-ms", "5")

    async def scenario():
        task = asyncio.ensure_future(sweep_async(server.url, TOKEN, "m", PAYLOAD, [4], duration=60, warmup=0))
        deadline = time.monotonic() + 20
        while (await asyncio.to_thread(server.stats))["requests"] < 20:
            assert time.monotonic() < deadline, "no load arrived"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    no_connections_left(server)


# -- targets -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", [
    "http://example.com", "http://10.1.2.3:8080", "http://192.168.1.10", "http://[2001:db8::1]:80",
    "http://127.0.0.1.example.com", "ftp://127.0.0.1", "127.0.0.1:8080",
])
def test_refuses_plain_http_beyond_loopback(host):
    with pytest.raises(TargetNotAllowed):
        sweep(host, TOKEN, "m", PAYLOAD, concurrency=[1], duration=1)
    with pytest.raises(TargetNotAllowed):
        open_loop(host, TOKEN, "m", PAYLOAD, rate=1, duration=1)


def test_unreachable_loopback_port_fails_fast():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    with pytest.raises(LoadTestError, match="cannot connect"):
        sweep(f"http://127.0.0.1:{port}", TOKEN, "m", PAYLOAD, concurrency=[2], duration=1)


def test_localhost_name_is_allowed(sleepy):
    row = sweep(f"http://localhost:{sleepy.port}", TOKEN, "sleeper", PAYLOAD, concurrency=[1],
                duration=0.3, warmup=0).iloc[0]
    assert row["successes"] > 0


@pytest.mark.parametrize("kwargs", [{"duration": 0}, {"duration": 1e6}, {"warmup": -1},
                                    {"concurrency": [0]}, {"concurrency": []}, {"concurrency": [1.5]}])
def test_invalid_run_parameters(sleepy, kwargs):
    args = {"concurrency": [1], "duration": 1, **kwargs}
    with pytest.raises(ValueError):
        sweep(sleepy.url, TOKEN, "m", PAYLOAD, **args)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_target_with_tls(start_server, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = start_server("--sleep-ms", "5", "--certfile", str(cert), "--keyfile", str(key))
    trusting = ssl.create_default_context(cafile=str(cert))
    row = sweep(f"https://localhost:{server.port}", TOKEN, "m", PAYLOAD, concurrency=[2],
                duration=0.5, warmup=0.1, ssl_context=trusting).iloc[0]
    assert row["successes"] > 0 and row["error_count"] == 0
    with pytest.raises(LoadTestError, match="cannot connect"):  # default trust store refuses it
        sweep(f"https://localhost:{server.port}", TOKEN, "m", PAYLOAD, concurrency=[1], duration=0.5)
