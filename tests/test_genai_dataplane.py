"""The GenAI data plane through the official clients: the openai client from the SDK's
`get_open_ai_client()`, mlflow's `predict_stream`, the SDK's `query`, and plain REST.

Every model is a real MLflow model logged by the tests (tests/genai_models.py), served by the local
backend's model worker: chat completions, completions and embeddings on the OpenAI-compatible routes,
streaming as server-sent events on those routes and on `/invocations`, ResponsesAgent and ChatAgent
with their native bodies, and the concurrency gate held for a whole stream.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique


def _sse(response: requests.Response) -> list:
    """The JSON chunks of a server-sent-event answer (up to `data: [DONE]`, which must end it)."""
    chunks, done = [], False
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith(b"data: "), line
        data = line[len(b"data: "):]
        if data == b"[DONE]":
            done = True
            continue
        assert not done, "nothing may follow [DONE]"
        chunks.append(json.loads(data))
    assert done, "the stream must end with data: [DONE]"
    return chunks


@pytest.fixture(scope="module")
def rest(local_backend):
    return Rest(local_backend.url, local_backend.token)


def _serve(rest: Rest, prefix: str, model: dict, **fields) -> str:
    name = unique(prefix)
    resp = rest.create(name, [entity(model["name"], model["version"], **fields)])
    assert resp.status_code == 200, resp.text
    rest.wait_ready(name, timeout=240)
    return name


@pytest.fixture(scope="module")
def chat_endpoint(rest, delayed_chat_model):
    name = _serve(rest, "gchat", delayed_chat_model)
    yield name
    rest.delete(name)


@pytest.fixture(scope="module")
def openai_client(local_backend):
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient().serving_endpoints.get_open_ai_client()


def test_chat_completion_through_the_openai_client(openai_client, chat_endpoint, rest):
    answer = openai_client.chat.completions.create(
        model=chat_endpoint, messages=[{"role": "user", "content": "hello"}], max_tokens=3,
        extra_body={"custom_inputs": {"tokens": 5}})
    assert answer.choices[0].message.content == "tok0 tok1 tok2"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 3
    assert rest.get(chat_endpoint)["task"] == "agent/v1/chat"


def test_chat_stream_through_the_openai_client_arrives_token_by_token(openai_client, chat_endpoint):
    arrivals, pieces = [], []
    started = time.perf_counter()
    stream = openai_client.chat.completions.create(
        model=chat_endpoint, messages=[{"role": "user", "content": "hello"}], stream=True,
        extra_body={"custom_inputs": {"ttft_ms": 0, "itl_ms": 400, "tokens": 3}})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - started)
            pieces.append(chunk.choices[0].delta.content)
    assert "".join(pieces) == "tok0 tok1 tok2"
    # Not buffered: the first token reached the client while the model was still producing the other
    # two (each 400 ms later), so it arrived well before the last one.
    assert arrivals[-1] - arrivals[0] > 0.6, arrivals


def test_streaming_on_invocations_is_server_sent_events(rest, chat_endpoint):
    resp = rest.session.post(f"{rest.url}/serving-endpoints/{chat_endpoint}/invocations", stream=True, timeout=60,
                             json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True,
                                   "custom_inputs": {"tokens": 4}})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["served-model-name"]
    chunks = _sse(resp)
    assert [c["choices"][0]["delta"].get("content") for c in chunks[:2]] == ["tok0 ", "tok1"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_mlflow_predict_stream(chat_endpoint):
    from mlflow.deployments import get_deploy_client

    client = get_deploy_client("databricks")
    chunks = list(client.predict_stream(endpoint=chat_endpoint, inputs={
        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "tok0 tok1 tok2"


def test_sdk_query_without_and_with_stream(chat_endpoint):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import ChatMessage, ChatMessageRole

    w = WorkspaceClient()
    answer = w.serving_endpoints.query(chat_endpoint, messages=[ChatMessage(role=ChatMessageRole.USER, content="hi")],
                                       max_tokens=2)
    assert answer.choices[0].message.content == "tok0 tok1"
    assert answer.served_model_name
    # With stream=True the backend answers server-sent events, as Databricks does, which this SDK's
    # `query` cannot parse (databricks-sdk-py#1048, open): it fails the same way against both.
    with pytest.raises(ValueError, match="Expecting value"):
        w.serving_endpoints.query(chat_endpoint, messages=[ChatMessage(role=ChatMessageRole.USER, content="hi")],
                                  max_tokens=2, stream=True)


def test_stream_holds_its_concurrency_slot_until_it_ends(rest, chat_endpoint, openai_client):
    """Small = 4 concurrent: four slow streams fill it, a fifth query is refused, and once they end it
    answers again."""
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True,
            "custom_inputs": {"ttft_ms": 0, "itl_ms": 300, "tokens": 6}}
    started, finished = threading.Barrier(5), []

    def stream_one():
        with requests.post(f"{rest.url}/serving-endpoints/{chat_endpoint}/invocations", json=body, stream=True,
                           headers=rest.session.headers, timeout=60) as resp:
            lines = resp.iter_lines()
            next(line for line in lines if line)  # the first chunk: the stream holds its slot now
            started.wait(timeout=30)
            finished.append(len(_rest_of(lines)))

    threads = [threading.Thread(target=stream_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait(timeout=30)
    refused = rest.query(chat_endpoint, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1})
    assert refused.status_code == 429, refused.text
    assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    for thread in threads:
        thread.join(timeout=60)
    assert len(finished) == 4
    answered = rest.query(chat_endpoint, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1})
    assert answered.status_code == 200, answered.text


def _rest_of(lines) -> list:
    return [line for line in lines if line]


def test_a_client_leaving_mid_stream_frees_its_slot(rest, chat_endpoint):
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True,
            "custom_inputs": {"ttft_ms": 0, "itl_ms": 2000, "tokens": 30}}
    for _ in range(4):  # every slot taken by a stream that would run a minute, then abandoned
        with requests.post(f"{rest.url}/serving-endpoints/{chat_endpoint}/invocations", json=body, stream=True,
                           headers=rest.session.headers, timeout=60) as resp:
            next(line for line in resp.iter_lines() if line)
    ok = poll(lambda: rest.query(chat_endpoint, {"messages": [{"role": "user", "content": "x"}],
                                                 "max_tokens": 1}).status_code == 200, 10, 0.2,
              "the abandoned streams' slots to be free")
    assert ok


def test_openai_route_errors_are_parsed_by_the_openai_client(openai_client, chat_endpoint, rest):
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.chat.completions.create(model="no-such-endpoint", messages=[{"role": "user", "content": "x"}])
    assert missing.value.message.endswith("Endpoint with name 'no-such-endpoint' does not exist.")
    assert missing.value.code == "RESOURCE_DOES_NOT_EXIST"  # openai reads the `error` object
    with pytest.raises(openai.BadRequestError) as wrong_task:
        openai_client.embeddings.create(model=chat_endpoint, input=["x"])
    assert "serves task 'agent/v1/chat'" in wrong_task.value.message
    no_model = rest.call("POST", "/serving-endpoints/chat/completions", json={"messages": []})
    assert no_model.status_code == 400
    assert no_model.json()["error_code"] == "BAD_REQUEST"
    assert "model" in no_model.json()["error"]["message"]
    not_json = rest.call("POST", "/serving-endpoints/chat/completions", data=b"{",
                         headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == "invalid_request_error"


@pytest.fixture(scope="module")
def agent_endpoints(rest, responses_agent_model, chat_agent_model):
    names = {"responses": _serve(rest, "gresp", responses_agent_model),
             "chat_agent": _serve(rest, "gcagent", chat_agent_model)}
    yield names
    for name in names.values():
        rest.delete(name)


def test_responses_agent_native_body_streamed_and_not(rest, agent_endpoints):
    name = agent_endpoints["responses"]
    assert rest.get(name)["task"] == "agent/v1/responses"
    body = {"input": [{"role": "user", "content": "hello"}], "custom_inputs": {"tokens": 3}}
    answer = rest.query(name, body)
    assert answer.status_code == 200, answer.text
    texts = [c["text"] for item in answer.json()["output"] if item["type"] == "message" for c in item["content"]]
    assert "".join(texts) == "tok0 tok1 tok2"
    resp = rest.session.post(f"{rest.url}/serving-endpoints/{name}/invocations", json={**body, "stream": True},
                             stream=True, timeout=60)
    events = _sse(resp)
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "tok0 tok1 tok2"
    assert any(e["type"] == "response.output_item.done" for e in events)


def test_responses_agent_through_the_openai_responses_route(openai_client, agent_endpoints):
    answer = openai_client.responses.create(model=agent_endpoints["responses"], input="hello",
                                            extra_body={"custom_inputs": {"tokens": 2}})
    assert answer.output_text == "tok0 tok1"


def test_chat_agent_native_body_streamed_and_not(rest, agent_endpoints):
    name = agent_endpoints["chat_agent"]
    body = {"messages": [{"role": "user", "content": "hello"}], "custom_inputs": {"tokens": 2}}
    answer = rest.query(name, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["messages"][-1]["content"] == "tok0 tok1"
    resp = rest.session.post(f"{rest.url}/serving-endpoints/{name}/invocations", json={**body, "stream": True},
                             stream=True, timeout=60)
    chunks = _sse(resp)
    assert "".join(c["delta"]["content"] for c in chunks if c.get("delta", {}).get("content")) == "tok0 tok1"


def test_custom_pyfunc_predict_stream(rest, streaming_pyfunc_model):
    name = _serve(rest, "gpyf", streaming_pyfunc_model)
    try:
        resp = rest.session.post(f"{rest.url}/serving-endpoints/{name}/invocations", stream=True, timeout=60,
                                 json={"inputs": {"prompt": "a b c"}, "params": {"tokens": 3}, "stream": True})
        assert resp.status_code == 200, resp.text
        assert len(_sse(resp)) >= 3
    finally:
        rest.delete(name)


def test_a_model_without_predict_stream_answers_a_json_error(rest, chat_model):
    """The echo ChatModel of tests/models.py implements no predict_stream (MLflow's default raises
    NotImplementedError at the first chunk): a Databricks 400 saying so, no stack trace; the same
    body without `stream` answers."""
    name = _serve(rest, "gnostream", chat_model)
    try:
        body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
        resp = rest.session.post(f"{rest.url}/serving-endpoints/{name}/invocations", timeout=60, json=body)
        assert resp.status_code == 400, resp.text
        assert resp.headers["content-type"].startswith("application/json")
        assert set(resp.json()) == {"error_code", "message", "details"}
        assert "does not stream" in resp.json()["message"]
        assert "Traceback" not in resp.text
        body.pop("stream")
        assert rest.query(name, body).status_code == 200
    finally:
        rest.delete(name)


def test_embeddings_with_the_real_minilm_through_the_openai_client(rest, openai_client, minilm_model):
    name = _serve(rest, "gemb", minilm_model)
    try:
        assert rest.get(name)["task"] == "llm/v1/embeddings"
        answer = openai_client.embeddings.create(model=name, input=["a cat sits on the mat", "a kitten on a rug",
                                                                    "quarterly tax filing deadline"])
        vectors = [d.embedding for d in answer.data]
        assert [len(v) for v in vectors] == [384, 384, 384]

        def cosine(a, b):
            return sum(x * y for x, y in zip(a, b)) / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    finally:
        rest.delete(name)


def test_completions_streamed_and_not_through_the_openai_client(rest, openai_client, completions_model):
    name = _serve(rest, "gcomp", completions_model)
    try:
        answer = openai_client.completions.create(model=name, prompt="one two three", max_tokens=2)
        assert answer.choices[0].text
        pieces = [c.choices[0].text for c in openai_client.completions.create(
            model=name, prompt="one two three", max_tokens=3, stream=True) if c.choices]
        assert len([p for p in pieces if p]) >= 2
    finally:
        rest.delete(name)


def test_langchain_chat_openai_client_from_the_sdk(chat_endpoint):
    """`get_langchain_chat_open_ai_client` (langchain-openai's ChatOpenAI on the same routes)."""
    from databricks.sdk import WorkspaceClient

    llm = WorkspaceClient().serving_endpoints.get_langchain_chat_open_ai_client(chat_endpoint)
    assert llm.invoke("hello", max_tokens=2).content == "tok0 tok1"
    pieces = [chunk.content for chunk in llm.stream("hello", max_tokens=3)]
    assert "".join(pieces) == "tok0 tok1 tok2"
    assert len([p for p in pieces if p]) == 3
