"""What the load generator sends and where: URLs, payload encoding, request bytes; step results."""
import asyncio
import json
import math

import numpy as np
import pandas as pd
import pytest

from jupyter_serving.bench.results import StepRecorder, build_result
from jupyter_serving.bench.target import (
    Target,
    TargetNotAllowed,
    encode_payload,
    invocation_url,
    resolve,
)


def test_invocation_urls():
    assert invocation_url("https://adb-1.azuredatabricks.net/", "my-ep") == \
        "https://adb-1.azuredatabricks.net/serving-endpoints/my-ep/invocations"
    assert invocation_url("http://127.0.0.1:8080", "my-ep", "blue-2") == \
        "http://127.0.0.1:8080/serving-endpoints/my-ep/served-models/blue-2/invocations"
    assert invocation_url("http://127.0.0.1:8080", "a/b") == \
        "http://127.0.0.1:8080/serving-endpoints/a%2Fb/invocations"


def test_dataframe_is_sent_as_dataframe_split_without_index():
    frame = pd.DataFrame({"x": [1.5, np.nan], "name": ["a", "b"]}, index=[10, 11])
    body = json.loads(encode_payload(frame))
    assert body == {"dataframe_split": {"columns": ["x", "name"], "data": [[1.5, "a"], [None, "b"]]}}


def test_dict_bytes_and_str_payloads():
    assert json.loads(encode_payload({"dataframe_records": [{"x": 1}]})) == {"dataframe_records": [{"x": 1}]}
    assert encode_payload(b'{"inputs": [1]}') == b'{"inputs": [1]}'
    assert encode_payload('{"inputs": ["é"]}') == '{"inputs": ["é"]}'.encode()
    with pytest.raises(TypeError, match="DataFrame"):
        encode_payload(42)


def test_request_bytes_are_a_complete_http11_post():
    target = Target.from_url("http://127.0.0.1:8080/serving-endpoints/m/invocations", b'{"a":1}',
                             {"Authorization": "Bearer tok"})
    head, body = target.request_bytes().split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /serving-endpoints/m/invocations HTTP/1.1"
    assert "Host: 127.0.0.1:8080" in lines
    assert "Content-Length: 7" in lines and "Authorization: Bearer tok" in lines
    assert body == b'{"a":1}'


def test_default_port_is_left_out_of_the_host_header():
    target = Target.from_url("https://adb-1.cloud.databricks.com/serving-endpoints/m/invocations", b"{}")
    assert target.port == 443 and target.is_tls
    assert b"Host: adb-1.cloud.databricks.com\r\n" in target.request_bytes()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/x", "http://127.5.6.7/x", "http://[::1]:8080/x",
                                 "http://localhost:1/x", "https://adb-1.azuredatabricks.net/x",
                                 "https://10.0.0.5/x"])
def test_allowed_targets(url):
    Target.from_url(url, b"{}")


@pytest.mark.parametrize("url", ["http://example.com/x", "http://10.0.0.5/x", "http://0.0.0.0:80/x",
                                 "http://localhost.example.com/x", "ws://127.0.0.1/x", "not a url",
                                 "http://127.0.0.1:99999/x"])
def test_refused_targets(url):
    with pytest.raises(TargetNotAllowed):
        Target.from_url(url, b"{}")


def test_resolution_must_stay_on_loopback():
    async def resolved(url):
        return await resolve(asyncio.get_running_loop(), Target.from_url(url, b"{}"))

    host, port = asyncio.run(resolved("http://localhost:8080/x"))
    assert port == 8080 and (host.startswith("127.") or host == "::1")


def _result(**kwargs):
    recorder = StepRecorder()
    for _ in range(kwargs.pop("ok", 90)):
        recorder.record_response(200, 20_000_000, b"m-1", b"")
    for _ in range(kwargs.pop("limited", 10)):
        recorder.record_response(429, 100_000, None, b'{"error_code":"REQUEST_LIMIT_EXCEEDED"}')
    defaults = dict(mode="closed", concurrency=4, target_rate=None, window_s=1.0,
                    answered_in_window=100, successes_in_window=90, unsent=0, incomplete=0,
                    cpu_s=0.2, loop_cpu_s=0.2, interrupted=False)
    defaults.update(kwargs)
    return build_result(recorder, **defaults)


def test_step_result_numbers():
    result = _result()
    assert result.qps == 90 and result.responses_per_s == 100
    assert result.failure_share == pytest.approx(0.1)
    assert result.served_models == {"m-1": 90}
    assert result.latency.count == 90  # 429s stay out of the latency histogram
    row = result.as_row()
    assert row["p50_ms"] == pytest.approx(20.0, rel=1e-3)
    assert math.isnan(row["lag_p50_ms"])
    assert "c=4: 90.0 QPS" in result.describe()


def test_saturated_client_is_flagged():
    assert not _result().client_saturated
    busy = _result(loop_cpu_s=0.95)
    assert busy.client_saturated and "client saturated" in busy.describe()


def test_open_loop_incomplete_and_unsent_count_as_failures():
    closed = _result(limited=0, incomplete=4)
    assert closed.failure_share == 0.0  # a closed loop cuts its last requests off by design
    opened = _result(mode="open", target_rate=100.0, limited=0, incomplete=4, unsent=6)
    assert opened.failures == 10
    assert opened.failure_share == pytest.approx(10 / 100)


def test_error_sample_keeps_the_first_message():
    recorder = StepRecorder()
    recorder.record_response(400, 1000, None, b'{"message":"Endpoint is stopped"}')
    recorder.record_failure("timeout", "no response within 30 s")
    assert recorder.errors == {"400": 1, "timeout": 1}
    assert recorder.error_sample == '400: {"message":"Endpoint is stopped"}'
