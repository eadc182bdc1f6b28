"""`client.chat` (streamed and not), `client.openai()`, and the AI Gateway's records read back
(`payloads`, `usage`, `metrics`) against the real local backend and real MLflow GenAI models."""
from __future__ import annotations

import time

import pytest

from jupyter_serving import api
from jupyter_serving.core.chat import ChatAnswer, ChatDelta
from jupyter_serving.core.chat_body import ANSWER_COLUMNS
from jupyter_serving.core.errors import NotFoundError, QueryError
from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique

PACED = {"ttft_ms": 0, "itl_ms": 300, "tokens": 3}
RECORDS = {"usage_tracking_config": {"enabled": True},
           "inference_table_config": {"enabled": True, "catalog_name": "main", "schema_name": "nb",
                                      "table_name_prefix": "x"}}


@pytest.fixture(scope="module")
def client(local_backend):
    return api.ServingClient.connect()


@pytest.fixture(scope="module")
def rest(local_backend):
    return Rest(local_backend.url, local_backend.token)


def _serve(rest: Rest, prefix: str, model: dict) -> str:
    name = unique(prefix)
    resp = rest.create(name, [entity(model["name"], model["version"])])
    assert resp.status_code == 200, resp.text
    rest.wait_ready(name, timeout=240)
    return name


@pytest.fixture(scope="module")
def chat_ep(rest, delayed_chat_model):
    name = _serve(rest, "cchat", delayed_chat_model)
    yield name
    rest.delete(name)


@pytest.fixture(scope="module")
def agent_eps(rest, responses_agent_model, chat_agent_model):
    names = {"responses": _serve(rest, "cresp", responses_agent_model),
             "chat_agent": _serve(rest, "cagent", chat_agent_model)}
    yield names
    for name in names.values():
        rest.delete(name)


def _timed(stream) -> tuple[list[ChatDelta], list[float]]:
    deltas, arrivals = [], []
    for delta in stream:
        deltas.append(delta)
        arrivals.append(time.perf_counter())
    return deltas, arrivals


def _assert_paced(deltas: list[ChatDelta], arrivals: list[float]) -> None:
    """The text pieces reached us one by one while the model produced them (300 ms apart)."""
    texts = [(d, t) for d, t in zip(deltas, arrivals) if d.text]
    assert [d.text for d, _ in texts] == ["tok0 ", "tok1 ", "tok2"]
    assert texts[0][1] < texts[-1][1] - 0.4, [t for _, t in texts]


def test_chat_streams_deltas_as_they_arrive_then_the_answer(client, chat_ep):
    stream = client.chat(chat_ep, "hello", custom_inputs=PACED)
    assert stream.answer is None
    deltas, arrivals = _timed(stream)
    _assert_paced(deltas, arrivals)
    answer = stream.answer
    assert isinstance(answer, ChatAnswer) and answer.streamed and not answer.stopped
    assert answer.text == "tok0 tok1 tok2" and answer.finish_reason == "stop"
    assert answer.completion_tokens == 3 and answer.prompt_tokens == 1
    assert answer.served_entity and answer.ttft_ms < answer.total_ms
    assert list(answer.frame.columns) == ANSWER_COLUMNS
    assert answer.frame.loc[0, "text"] == "tok0 tok1 tok2"


def test_chat_without_stream_and_with_sampling_parameters(client, chat_ep):
    answer = client.chat(chat_ep, [{"role": "user", "content": "hi"}], stream=False, system="be brief",
                         max_tokens=2, temperature=0.1, custom_inputs={"tokens": 5})
    assert isinstance(answer, ChatAnswer) and not answer.streamed
    assert answer.text == "tok0 tok1" and answer.finish_reason == "length"
    assert answer.prompt_tokens == 3  # "be brief" + "hi": the system message was sent
    assert answer.ttft_ms == answer.total_ms > 0


def test_closing_a_stream_stops_it_and_keeps_what_came(client, chat_ep):
    stream = client.chat(chat_ep, "hello", custom_inputs={"ttft_ms": 0, "itl_ms": 2000, "tokens": 30})
    first = next(d for d in stream if d.text)
    assert first.text == "tok0 "
    started = time.perf_counter()
    stream.close()
    assert time.perf_counter() - started < 1.0
    assert list(stream) == []
    assert stream.answer.stopped and stream.answer.text == "tok0 "


def test_closing_from_another_thread_wakes_the_reader(client, chat_ep):
    import threading

    stream = client.chat(chat_ep, "hello", custom_inputs={"ttft_ms": 0, "itl_ms": 5000, "tokens": 10})
    got = []
    reader = threading.Thread(target=lambda: got.extend(stream))
    reader.start()
    poll(lambda: stream.text, 30, 0.05, "the first token")
    stream.close()
    reader.join(timeout=3)
    assert not reader.is_alive(), "close() must wake the reading thread"
    assert stream.answer.stopped and stream.answer.text == "tok0 "


def test_responses_agent_streams_text_tool_calls_and_results(client, agent_eps):
    name = agent_eps["responses"]
    deltas, arrivals = _timed(client.chat(name, "hello", custom_inputs=PACED))
    _assert_paced(deltas, arrivals)
    stream = client.chat(name, "please call tool", custom_inputs={"tokens": 2})
    answer = stream.collect()
    assert [item.kind for item in answer.items] == ["tool_call", "tool_result", "text"]
    call, result = answer.tool_calls[0], answer.tool_results[0]
    assert call.name == "get_weather" and '"Paris"' in call.arguments and result.call_id == call.id
    assert answer.text == "tok0 tok1" and answer.finish_reason == "stop"
    assert answer.transcript().splitlines() == ['→ get_weather({"city": "Paris"})',
                                                '← get_weather: {"temperature_c": 21}', "tok0 tok1"]
    whole = client.chat(name, "please call tool", stream=False, max_tokens=5, custom_inputs={"tokens": 2})
    assert [i.kind for i in whole.items] == ["tool_call", "tool_result", "text"] and whole.text == "tok0 tok1"
    assert list(whole.frame.columns) == ANSWER_COLUMNS + ["tool_calls", "tool_results"]


def test_chat_agent_streamed_and_not(client, agent_eps):
    name = agent_eps["chat_agent"]
    deltas, arrivals = _timed(client.chat(name, "hello", custom_inputs=PACED))
    _assert_paced(deltas, arrivals)
    answer = client.chat(name, "hello", stream=False, max_tokens=2, custom_inputs={"tokens": 4})
    assert answer.text == "tok0 tok1"  # max_tokens reached the agent in custom_inputs


def test_chat_errors_are_one_line(client, chat_ep, chat_model, rest):
    with pytest.raises(NotFoundError, match="No serving endpoint named 'no-such-chat'"):
        client.chat("no-such-chat", "hi")
    with pytest.raises(NotFoundError, match="has no served entity 'nope'"):
        client.chat(chat_ep, "hi", entity="nope").collect()
    name = _serve(rest, "cnostream", chat_model)  # tests.models.EchoChatModel has no predict_stream
    try:
        with pytest.raises(QueryError) as err:
            client.chat(name, "hi")
        assert str(err.value).startswith(f"Endpoint '{name}' does not stream: ")
        assert err.value.one_line("magic").endswith("use --no-stream.")
        assert client.chat(name, "hi", stream=False).text == "echo: hi"
    finally:
        rest.delete(name)


def test_openai_client_is_bound_to_the_backend(client, chat_ep):
    answer = client.openai().chat.completions.create(
        model=chat_ep, messages=[{"role": "user", "content": "hello"}], max_tokens=2)
    assert answer.choices[0].message.content == "tok0 tok1"


def test_payloads_usage_and_their_summary(client, rest, delayed_chat_model):
    name = _serve(rest, "crec", delayed_chat_model)
    try:
        with pytest.raises(Exception, match="has no inference table"):
            client.payloads(name)
        assert rest.call("PUT", f"/api/2.0/serving-endpoints/{name}/ai-gateway", json=RECORDS).status_code == 200
        since = int(time.time() * 1000) - 1
        client.chat(name, "hello", custom_inputs={"tokens": 2}, client_request_id="streamed-1").collect()
        client.chat(name, "again", stream=False, custom_inputs={"tokens": 3}, client_request_id="whole-1")
        (frame,) = poll(lambda: [f for f in [client.payloads(name, since=since)] if len(f) == 2], 10, 0.2,
                        "both payload rows")
        assert list(frame["client_request_id"]) == ["streamed-1", "whole-1"]
        assert list(frame["response_text"]) == ["tok0 tok1", "tok0 tok1 tok2"]
        assert frame.loc[1, "request"]["messages"][0]["content"] == "again"
        assert set(frame["status_code"]) == {200} and frame["served_entity_name"].notna().all()
        assert len(client.payloads(name, limit=1)) == 1
        usage = client.usage(name, since="10m")
        assert sorted(usage["output_token_count"]) == [2, 3]
        summary = client.usage_summary(name)
        assert summary.loc[0, "requests"] == 2 and summary.loc[0, "output_tokens"] == 5
    finally:
        rest.delete(name)


def test_metrics_are_parsed(client, chat_ep):
    from jupyter_serving.core.metrics import REQUESTS, window

    before = client.metrics(chat_ep)
    client.chat(chat_ep, "hi", stream=False, custom_inputs={"tokens": 1})
    after = client.metrics(chat_ep)
    assert after.total(REQUESTS) == before.total(REQUESTS) + 1
    stats = window(before, after)
    assert stats["qps"] > 0 and stats["p50_ms"] is not None
    assert set(after.frame()["metric"]) >= {REQUESTS, "in_flight_requests"}
    with pytest.raises(NotFoundError):
        client.metrics("no-such-metrics-ep")
