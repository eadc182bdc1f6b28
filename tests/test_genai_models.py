"""Fast tier: the GenAI test models (tests/genai_models.py) as real MLflow models, without a backend.

Each model is logged into a throw-away file-based MLflow store, loaded with `mlflow.pyfunc.load_model`
and driven exactly as a scoring worker drives it: the Databricks-native JSON body goes through MLflow's
own `_parse_json_data(body, model.metadata, input_schema)`, then `model.predict(data, params)` or
`model.predict_stream(data, params)`. MLflow's non-streaming `/invocations` is checked too.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path

import pytest

from tests import genai_models as gm

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A private file-based tracking store for this module; the previous tracking URI is restored after."""
    import cloudpickle
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    cloudpickle.register_pickle_by_value(gm)
    root = tmp_path_factory.mktemp("genai-mlflow")
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE")}
    saved_uri = tracking_utils._tracking_uri
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    mlflow.set_tracking_uri((root / "mlruns").as_uri())
    try:
        yield root
    finally:
        mlflow.set_tracking_uri(saved_uri)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def models(mlflow_store):
    """kind -> loaded PyFuncModel, logged on first use (one run per model, like `_register`)."""
    import mlflow

    cache = {}

    def get(kind):
        if kind not in cache:
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(name="model", **gm.log_kwargs(kind))
            cache[kind] = mlflow.pyfunc.load_model(info.model_uri)
        return cache[kind]

    return get


def _parse(model, body):
    from mlflow.pyfunc.scoring_server import _parse_json_data

    return _parse_json_data(json.dumps(body), model.metadata, model.metadata.get_input_schema())


def predict(model, body):
    parsed = _parse(model, body)
    return json.loads(json.dumps(model.predict(parsed.data, parsed.params)))


def stream(model, body):
    parsed = _parse(model, body)
    return [json.loads(json.dumps(c)) for c in model.predict_stream(parsed.data, parsed.params)]


@pytest.fixture
def http(monkeypatch):
    """POST a body to MLflow's own scoring app (`scoring_server.init(model)`) in process."""
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")  # init() sets it; restored after

    def post(model, body):
        client = TestClient(scoring_server.init(model))
        return client.post("/invocations", content=json.dumps(body), headers={"content-type": "application/json"})

    return post


def _streamable(model) -> bool:
    return bool(model.metadata.flavors["python_function"].get("streamable"))


# ----------------------------------------------------------------------------------------------
# Each model with its native bodies
# ----------------------------------------------------------------------------------------------

def test_delayed_chat_model(models, http):
    model = models("delayed_chat")
    assert model.metadata.metadata["task"] == "agent/v1/chat" and _streamable(model)

    answer = predict(model, {"messages": USER, "max_tokens": 5})
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "tok0 tok1 tok2 tok3 tok4"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}

    assert predict(model, {"messages": USER})["usage"]["completion_tokens"] == gm.DEFAULT_TOKENS
    capped = predict(model, {"messages": USER, "max_tokens": 2, "custom_inputs": {"tokens": 10}})
    assert capped["choices"][0]["message"]["content"] == "tok0 tok1"
    assert capped["choices"][0]["finish_reason"] == "length"

    chunks = stream(model, {"messages": USER, "max_tokens": 3})
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 4
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["tok0 ", "tok1 ", "tok2", None]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    assert all("finish_reason" not in c["choices"][0] and "usage" not in c for c in chunks[:-1])

    echo = {"messages": [{"role": "system", "content": "be nice"},
                         {"role": "user", "content": "echo: my SSN is 123-45-6789"}]}
    assert predict(model, echo)["choices"][0]["message"]["content"] == "my SSN is 123-45-6789"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in stream(model, echo)) == "my SSN is 123-45-6789"

    reply = http(model, {"messages": USER, "max_tokens": 2, "stream": True})  # MLflow's server never streams
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "tok0 tok1"


def test_delayed_responses_agent(models, http):
    model = models("responses_agent")
    assert model.metadata.metadata["task"] == "agent/v1/responses" and _streamable(model)

    answer = predict(model, {"input": USER, "custom_inputs": {"tokens": 3}})
    assert answer["object"] == "response"
    [item] = answer["output"]
    assert item["type"] == "message" and item["role"] == "assistant"
    assert item["content"] == [{"type": "output_text", "text": "tok0 tok1 tok2", "annotations": []}]
    assert answer["usage"]["output_tokens"] == 3
    assert predict(model, {"input": USER, "max_output_tokens": 2})["output"][0]["content"][0]["text"] == "tok0 tok1"

    events = stream(model, {"input": USER, "custom_inputs": {"tokens": 3}})
    assert [e["type"] for e in events] == ["response.output_text.delta"] * 3 + ["response.output_item.done"]
    assert [e["delta"] for e in events[:3]] == ["tok0 ", "tok1 ", "tok2"]
    done = events[-1]
    assert {e["item_id"] for e in events[:3]} == {done["item"]["id"]}
    assert done["item"]["content"][0]["text"] == "tok0 tok1 tok2"
    assert done["custom_outputs"]["finish_reason"] == "stop"

    tool = {"input": [{"role": "user", "content": "please call tool"}], "custom_inputs": {"tokens": 1}}
    kinds = [e["type"] if e["type"] != "response.output_item.done" else e["item"]["type"] for e in stream(model, tool)]
    assert kinds == ["function_call", "function_call_output", "response.output_text.delta", "message"]
    call, output, message = predict(model, tool)["output"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    assert output["call_id"] == call["call_id"] and message["type"] == "message"

    echo = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "echo: hello there"}]}]}
    assert predict(model, echo)["output"][0]["content"][0]["text"] == "hello there"

    assert http(model, {"input": USER, "custom_inputs": {"tokens": 2}}).json()["output"][0]["content"][0]["text"] == "tok0 tok1"
    refused = http(model, {"input": "hi"})  # a bare string input (valid in OpenAI's API) fails MLflow's schema
    assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_delayed_chat_agent(models, http):
    model = models("chat_agent")
    assert model.metadata.metadata["task"] == "agent/v2/chat" and _streamable(model)

    answer = predict(model, {"messages": USER, "custom_inputs": {"tokens": 3}})
    [message] = answer["messages"]
    assert message["role"] == "assistant" and message["content"] == "tok0 tok1 tok2" and message["id"]
    assert answer["finish_reason"] == "stop" and answer["usage"]["completion_tokens"] == 3

    chunks = stream(model, {"messages": USER, "custom_inputs": {"tokens": 3}, "context": {"conversation_id": "c1"}})
    assert [c["delta"]["content"] for c in chunks] == ["tok0 ", "tok1 ", "tok2", ""]
    assert len({c["delta"]["id"] for c in chunks}) == 1
    assert chunks[-1]["finish_reason"] == "stop" and chunks[-1]["usage"]["completion_tokens"] == 3

    capped = predict(model, {"messages": USER, "custom_inputs": {"tokens": 5, "max_tokens": 2}})
    assert capped["messages"][0]["content"] == "tok0 tok1" and capped["finish_reason"] == "length"
    assert http(model, {"messages": USER}).json()["messages"][0]["content"].split()[-1] == "tok7"


def test_streaming_pyfunc(models, http):
    model = models("streaming_pyfunc")
    assert "task" not in (model.metadata.metadata or {}) and _streamable(model)

    assert predict(model, {"inputs": {"prompt": "hi", "tokens": 2}}) == {"text": "tok0 tok1", "tokens": 2}
    assert stream(model, {"inputs": {"prompt": "hi", "tokens": 2}}) == [{"index": 0, "token": "tok0 "},
                                                                         {"index": 1, "token": "tok1"}]
    assert stream(model, {"inputs": {"prompt": "hi"}, "params": {"tokens": 3, "chunk_type": "str"}}) == [
        "tok0 ", "tok1 ", "tok2"]
    assert predict(model, {"inputs": {"prompt": "echo: a b c"}})["text"] == "a b c"
    rows = {"dataframe_records": [{"prompt": "hi", "tokens": 1}, {"prompt": "echo: x y", "tokens": 1}]}
    assert predict(model, rows) == [{"text": "tok0", "tokens": 1}, {"text": "x y", "tokens": 2}]
    assert predict(model, {"instances": [{"prompt": "hi", "tokens": 1}]}) == [{"text": "tok0", "tokens": 1}]

    reply = http(model, {"inputs": {"prompt": "hi"}, "params": {"tokens": 2}})
    assert reply.status_code == 200 and reply.json() == {"predictions": {"text": "tok0 tok1", "tokens": 2}}


def test_echo_completions(models, http):
    model = models("completions")
    assert model.metadata.metadata["task"] == "llm/v1/completions" and _streamable(model)

    answer = predict(model, {"prompt": "one two three", "max_tokens": 2})
    assert answer["object"] == "text_completion"
    assert answer["choices"] == [{"index": 0, "text": "one two", "finish_reason": "length", "logprobs": None}]
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert [c["text"] for c in predict(model, {"prompt": ["a b", "c"]})["choices"]] == ["a b", "c"]

    chunks = stream(model, {"prompt": "one two three"})
    assert [c["choices"][0]["text"] for c in chunks] == ["one ", "two ", "three", ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "stop"]
    assert chunks[-1]["usage"]["completion_tokens"] == 3 and all("usage" not in c for c in chunks[:-1])

    reply = http(model, {"prompt": "x y z", "max_tokens": 1})
    assert reply.status_code == 200 and reply.json()["choices"][0]["text"] == "x"


def test_minilm_embeddings(models, http):
    model = models("minilm")
    assert model.metadata.metadata["task"] == "llm/v1/embeddings" and not _streamable(model)
    # The weights travel inside the MLflow model: the loaded copy does not read the installed package.
    weights = model._model_impl.context.artifacts[gm.MINILM_ARTIFACT]
    assert Path(weights, "model.safetensors").is_file() and not weights.startswith(gm.minilm_model_dir())
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("TRANSFORMERS_OFFLINE") == "1"

    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."]
    answer = predict(model, {"input": texts})
    assert answer["object"] == "list" and answer["model"] == gm.MINILM_NAME
    assert [d["index"] for d in answer["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 384 for d in answer["data"])
    vectors = [d["embedding"] for d in answer["data"]]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-3) for v in vectors)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b))

    assert cos(vectors[0], vectors[1]) > 0.5 > cos(vectors[0], vectors[2])
    assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"]
    assert len(predict(model, {"input": "hello"})["data"]) == 1

    reply = http(model, {"input": ["a", "b"]})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["data"]) == 2 and "predictions" not in reply.json()

    with pytest.raises(Exception, match="does not support predict_stream"):
        stream(model, {"input": ["a"]})


# ----------------------------------------------------------------------------------------------
# Delay control: TTFT and inter-token latency, per request
# ----------------------------------------------------------------------------------------------

TTFT_MS, ITL_MS, TOKENS = 100, 10, 10
DELAYS = {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS, "tokens": TOKENS}
TEN_WORDS = " ".join(f"w{i}" for i in range(TOKENS))

STREAMING = {
    # kind: (body with delays, is this chunk a token?)
    "delayed_chat": ({"messages": USER, "custom_inputs": DELAYS},
                     lambda c: bool(c["choices"][0]["delta"].get("content"))),
    "responses_agent": ({"input": USER, "custom_inputs": DELAYS},
                        lambda c: c["type"] == "response.output_text.delta"),
    "chat_agent": ({"messages": USER, "custom_inputs": DELAYS}, lambda c: bool(c["delta"]["content"])),
    "streaming_pyfunc": ({"inputs": {"prompt": "hi"}, "params": DELAYS}, lambda c: True),
    "completions": ({"prompt": TEN_WORDS, "custom_inputs": {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS}},
                    lambda c: bool(c["choices"][0]["text"])),
}


def _timed_stream(model, body, is_token):
    parsed = _parse(model, body)
    start = time.perf_counter()
    stamps = [time.perf_counter() for c in model.predict_stream(parsed.data, parsed.params) if is_token(c)]
    return start, stamps


def _within(value, target, tolerance=0.15):
    return abs(value - target) <= tolerance * target


@pytest.mark.parametrize("kind", sorted(STREAMING))
def test_stream_delays_are_controlled_per_request(models, kind):
    model = models(kind)
    body, is_token = STREAMING[kind]
    failures = []
    for _ in range(3):  # a shared CI machine can stall one run; the delays must hold in one of three
        start, stamps = _timed_stream(model, body, is_token)
        assert len(stamps) == TOKENS
        ttft = (stamps[0] - start) * 1000
        gaps = [(b - a) * 1000 for a, b in zip(stamps, stamps[1:])]
        total = (stamps[-1] - start) * 1000
        measured = {"ttft": round(ttft, 1), "median_gap": round(statistics.median(gaps), 2),
                    "min_gap": round(min(gaps), 2), "total": round(total, 1)}
        if (_within(ttft, TTFT_MS) and _within(statistics.median(gaps), ITL_MS) and min(gaps) >= 0.85 * ITL_MS
                and _within(total, TTFT_MS + (TOKENS - 1) * ITL_MS)):
            break
        failures.append(measured)
    else:
        pytest.fail(f"{kind}: delays not within 15 % of ttft {TTFT_MS} ms / itl {ITL_MS} ms: {failures}")


@pytest.mark.parametrize("kind", sorted(STREAMING))
def test_predict_takes_as_long_as_the_stream(models, kind):
    model = models(kind)
    body, _ = STREAMING[kind]
    expected = (TTFT_MS + (TOKENS - 1) * ITL_MS) / 1000
    for _ in range(3):
        start = time.perf_counter()
        predict(model, body)
        if _within(time.perf_counter() - start, expected):
            break
    else:
        pytest.fail(f"{kind}: predict took {time.perf_counter() - start:.3f} s, expected about {expected:.3f} s")


# ----------------------------------------------------------------------------------------------
# Pickled by value: a scoring worker, which cannot import the tests package, loads and streams them
# ----------------------------------------------------------------------------------------------

_ELSEWHERE = r'''
import json, sys
sys.modules["tests"] = None  # an editable install puts the repo on sys.path: block the package outright
import mlflow.pyfunc
from mlflow.pyfunc.scoring_server import _parse_json_data, invocations
out = {}
for kind, path, body in json.loads(sys.argv[1]):
    model = mlflow.pyfunc.load_model(path)
    parsed = _parse_json_data(json.dumps(body), model.metadata, model.metadata.get_input_schema())
    chunks = list(model.predict_stream(parsed.data, parsed.params))
    answer = invocations(json.dumps(body), "application/json", model, model.metadata.get_input_schema())
    out[kind] = {"chunks": len(chunks), "status": answer.status}
print(json.dumps(out))
'''


def test_models_load_and_stream_where_the_tests_package_is_not_importable(mlflow_store, tmp_path):
    import subprocess
    import sys

    import mlflow

    bodies = {kind: body for kind, (body, _) in STREAMING.items()}
    bodies = {kind: {**body, **({"custom_inputs": {"tokens": 2}} if "custom_inputs" in body else {})}
              for kind, body in bodies.items()}
    bodies["streaming_pyfunc"] = {"inputs": {"prompt": "hi", "tokens": 2}}
    bodies["completions"] = {"prompt": "a b"}
    jobs = []
    for kind, body in sorted(bodies.items()):
        path = tmp_path / kind
        mlflow.pyfunc.save_model(path, **gm.log_kwargs(kind))
        jobs.append([kind, str(path), body])
    done = subprocess.run([sys.executable, "-c", _ELSEWHERE, json.dumps(jobs)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "chat_agent": {"chunks": 3, "status": 200},  # 2 tokens + the finish chunk
        "completions": {"chunks": 3, "status": 200},
        "delayed_chat": {"chunks": 3, "status": 200},
        "responses_agent": {"chunks": 3, "status": 200},  # 2 deltas + output_item.done
        "streaming_pyfunc": {"chunks": 2, "status": 200},
    }
