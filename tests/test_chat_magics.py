"""`%%query --chat` / chat bodies streamed into one display, and `%serve payloads`, `usage` and
`metrics [--watch]`, in a real IPython shell against the real local backend."""
from __future__ import annotations

import time

import pandas as pd
import pytest

from jupyter_serving import api
from jupyter_serving.core.chat_body import ANSWER_COLUMNS
from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique
from tests.fake_kernel import fake_kernel_display
from tests.magic_helpers import ok, one_line_error, run, shell

RECORDS = {"usage_tracking_config": {"enabled": True},
           "inference_table_config": {"enabled": True, "catalog_name": "main", "schema_name": "nb",
                                      "table_name_prefix": "x"}}


@pytest.fixture(scope="module")
def ip(local_backend):
    api.disconnect()
    return shell()


@pytest.fixture(scope="module")
def rest(local_backend):
    return Rest(local_backend.url, local_backend.token)


def _serve(rest: Rest, prefix: str, model: dict) -> str:
    name = unique(prefix)
    assert rest.create(name, [entity(model["name"], model["version"])]).status_code == 200
    rest.wait_ready(name, timeout=240)
    return name


@pytest.fixture(scope="module")
def chat_ep(rest, delayed_chat_model):
    name = _serve(rest, "mchat", delayed_chat_model)
    yield name
    rest.delete(name)


def _capture(monkeypatch) -> tuple[list, list]:
    """The fake kernel's display capture, plus (kind, time) of each display() and update() call."""
    import IPython.display

    shown = fake_kernel_display(monkeypatch)
    calls: list = []
    fake = IPython.display.display

    def display(obj, **kwargs):
        calls.append(("display", time.perf_counter()))
        handle = fake(obj, **kwargs)
        update = handle.update

        def timed_update(new, **kw):
            calls.append(("update", time.perf_counter()))
            update(new, **kw)

        handle.update = timed_update
        return handle

    monkeypatch.setattr(IPython.display, "display", display)
    return shown, calls


def test_query_chat_streams_into_one_updating_display_then_the_frame(ip, chat_ep, monkeypatch):
    shown, calls = _capture(monkeypatch)
    ran = ok(ip, f'%%query {chat_ep} --chat "what is {{x}} $y?"\n'
                 '{"custom_inputs": {"ttft_ms": 0, "itl_ms": 300, "tokens": 3}}')
    frame = ran.value
    assert list(frame.columns) == ANSWER_COLUMNS
    row = frame.iloc[0]
    assert (row["text"], row["finish_reason"], row["completion_tokens"]) == ("tok0 tok1 tok2", "stop", 3)
    assert row["prompt_tokens"] == 4  # the 4 words of "what is {x} $y?", sent as typed (not expanded)
    assert row["ttft_ms"] < row["total_ms"] and row["served_entity"]
    assert [c[0] for c in calls] == ["display", "update", "update"]  # one display, updated in place
    assert [b["text/plain"] for b in shown] == ["tok0 ", "tok0 tok1 ", "tok0 tok1 tok2"]
    assert calls[0][1] < calls[-1][1] - 0.4  # the first token was shown while the others were still coming


def test_query_chat_line_no_stream_and_outside_a_kernel(ip, chat_ep):
    ran = ok(ip, f'%query {chat_ep} --chat "hi" --no-stream --max-tokens 2 --system "be brief"')
    assert ran.value.loc[0, "text"] == "tok0 tok1" and ran.value.loc[0, "finish_reason"] == "stop"
    assert ran.value.loc[0, "ttft_ms"] == ran.value.loc[0, "total_ms"]
    printed = ok(ip, f'%query {chat_ep} --chat "hi" --max-tokens 3 -o answer')
    assert printed.value is None and printed.out == "tok0 tok1 tok2\n"  # streamed to stdout piece by piece
    assert ip.user_ns["answer"].loc[0, "completion_tokens"] == 3
    raw = ok(ip, f'%query {chat_ep} --chat "hi" --max-tokens 1 --raw --no-stream').value
    assert raw["choices"][0]["message"]["content"] == "tok0"


def test_a_chat_body_to_a_chat_endpoint_streams_and_other_bodies_do_not(ip, chat_ep, monkeypatch):
    shown, calls = _capture(monkeypatch)
    ip.user_ns["question"] = "hello"
    frame = ok(ip, f'%%query {chat_ep}\n{{"messages": [{{"role": "user", "content": $question}}], "max_tokens": 2}}'
               ).value
    assert frame.loc[0, "text"] == "tok0 tok1" and list(frame.columns) == ANSWER_COLUMNS
    assert shown[-1] == {"text/plain": "tok0 tok1"} and calls[0][0] == "display"
    seen = len(calls)
    whole = ok(ip, f'%%query {chat_ep} --no-stream\n{{"messages": [{{"role": "user", "content": "x"}}], '
                   '"max_tokens": 1}').value
    assert whole.loc[0, "text"] == "tok0" and len(calls) == seen  # nothing more shown without a stream


def test_agent_turns_render_tool_calls_and_results(ip, rest, responses_agent_model, monkeypatch):
    name = _serve(rest, "magent", responses_agent_model)
    try:
        shown, _ = _capture(monkeypatch)
        frame = ok(ip, f'%%query {name}\n{{"input": [{{"role": "user", "content": "please call tool"}}], '
                       '"custom_inputs": {"tokens": 2}}').value
        assert shown[-1]["text/plain"].splitlines() == [
            '→ get_weather({"city": "Paris"})', '← get_weather: {"temperature_c": 21}', "tok0 tok1"]
        assert frame.loc[0, "tool_calls"] == ['get_weather({"city": "Paris"})']
        assert frame.loc[0, "tool_results"] == ['{"temperature_c": 21}'] and frame.loc[0, "text"] == "tok0 tok1"
        shown.clear()
        frame = ok(ip, f'%query {name} --chat "please call tool" --no-stream').value
        assert "→ get_weather" in shown[-1]["text/plain"] and frame.loc[0, "finish_reason"] == "stop"
    finally:
        rest.delete(name)


def test_chat_errors_are_one_line_with_did_you_mean(ip, chat_ep):
    message = one_line_error(run(ip, f'%query {chat_ep[:-1]}x --chat "hi"'))
    assert f"Did you mean '{chat_ep}'?" in message
    assert "--temperature: invalid float value" in one_line_error(run(ip, f'%query {chat_ep} --chat hi --temperature x'))
    assert "cell holds a JSON object" in one_line_error(run(ip, f'%%query {chat_ep} --chat hi\n[1, 2]'))
    for sub in ("payloads", "usage", "metrics"):
        message = one_line_error(run(ip, f"%serve {sub} {chat_ep[:-1]}x"))
        assert message.endswith(f"Did you mean '{chat_ep}'? Run `%serve {sub} {chat_ep}`."), message


def test_payloads_usage_and_metrics_watch_until_the_endpoint_is_gone(ip, rest, delayed_chat_model, monkeypatch):
    name = _serve(rest, "mrec", delayed_chat_model)
    deleted = False
    try:
        assert "has no inference table" in one_line_error(run(ip, f"%serve payloads {name}"))
        assert f"%serve gateway {name} --usage-tracking" in one_line_error(run(ip, f"%serve usage {name}"))
        assert rest.call("PUT", f"/api/2.0/serving-endpoints/{name}/ai-gateway", json=RECORDS).status_code == 200
        ok(ip, f'%query {name} --chat "one" --no-stream')
        ok(ip, f'%query {name} --chat "two" --max-tokens 2 -o ignored')
        frame = poll(lambda: [f for f in [ok(ip, f"%serve payloads {name} --since 10m").value] if len(f) == 2],
                     10, 0.2, "two payload rows")[0]
        assert list(frame.columns[:5]) == ["request_time", "status_code", "execution_duration_ms",
                                           "served_entity_name", "client_request_id"]
        assert [r["messages"][-1]["content"] for r in frame["request"]] == ["one", "two"]
        assert frame.loc[1, "response_text"] == "tok0 tok1"
        assert len(ok(ip, f"%serve payloads {name} --limit 1").value) == 1
        summary = ok(ip, f"%serve usage {name}").value
        assert summary.loc[0, "requests"] == 2 and summary.loc[0, "output_tokens"] == 8 + 2
        assert len(ok(ip, f"%serve usage {name} --rows --since 1h").value) == 2
        assert "Cannot read the time 'soon'" in one_line_error(run(ip, f"%serve usage {name} --since soon"))

        shown = fake_kernel_display(monkeypatch)
        assert ok(ip, f"%serve metrics {name} --watch --interval 0.3 --duration 600 -o watch").value is None
        watch = ip.user_ns["watch"]
        poll(lambda: len(watch.rows) >= 2, 20, 0.1, "two windows")
        rest.delete(name)
        deleted = True
        assert watch.wait(30), "the watch must stop once the endpoint is gone"
        assert watch.reason == f"endpoint '{name}' is gone"
        assert shown[-1]["text/plain"].startswith(f"Stopped watching '{name}' after ")
    finally:
        if not deleted:
            rest.delete(name)


def test_metrics_snapshot_and_watch_for_a_duration(ip, chat_ep, monkeypatch):
    from IPython.display import Image

    from jupyter_serving.core.metrics import SUMMARY_COLUMNS

    ok(ip, f'%query {chat_ep} --chat "hi" --no-stream')
    snapshot = ok(ip, f"%serve metrics {chat_ep}").value
    summary = snapshot.summary()
    assert list(summary.columns) == SUMMARY_COLUMNS and summary.loc[0, "requests"] >= 1
    shown = fake_kernel_display(monkeypatch)
    ok(ip, f"%serve metrics {chat_ep} --watch --interval 0.3 --duration 3 -o watch")
    watch = ip.user_ns["watch"]
    for _ in range(3):
        ok(ip, f'%query {chat_ep} --chat "hi" --no-stream')  # the kernel stays free while it watches
    assert watch.wait(30) and watch.reason == "--duration 3 s passed"
    assert any(isinstance(s, Image) for s in shown), "the chart is an image"
    frame = watch.frame
    assert len(frame) >= 2 and frame["qps"].sum() > 0
    assert isinstance(frame, pd.DataFrame) and "Stopped watching" in shown[-1]["text/plain"]
    assert "usage: %serve metrics" in ok(ip, "%serve help metrics").out
    help_text = ok(ip, "%serve help").out
    assert all(f"  {sub} " in help_text for sub in ("payloads", "usage", "metrics"))


def test_a_model_that_does_not_stream_answers_whole_unless_a_stream_was_asked_for(ip, rest, chat_model):
    """The echo ChatModel of tests/models.py has no predict_stream: streaming is only %%query's default for
    a chat body, so the answer comes whole; a body that asks for `"stream": true` gets the one-line error."""
    name = _serve(rest, "mnostream", chat_model)
    try:
        ran = ok(ip, f'%%query {name}\n{{"messages": [{{"role": "user", "content": "hi"}}]}}')
        assert ran.value.loc[0, "text"] == "echo: hi"
        assert ok(ip, f'%query {name} --chat "hello" -o whole').value is None
        assert ip.user_ns["whole"].loc[0, "text"] == "echo: hello"
        asked = one_line_error(run(ip, f'%%query {name}\n{{"messages": [{{"role": "user", "content": "hi"}}], '
                                       f'"stream": true}}'))
        assert f"Endpoint '{name}' does not stream" in asked and "--no-stream" in asked
    finally:
        rest.delete(name)
