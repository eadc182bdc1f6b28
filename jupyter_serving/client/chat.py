"""Chatting with GenAI endpoints: `openai()`, `endpoint_task()` and `chat()` (streamed or not).

A streamed turn is `POST /serving-endpoints/{name}[/served-models/{entity}]/invocations` with
`"stream": true`, sent with `requests` and the SDK config's auth headers, and read as server-sent events
as they arrive (`ChatStream`). The body's dialect follows the endpoint's task (`core.chat_body`).
Without a stream the turn goes through `query()` (sent once, its errors explained the same way).
"""
from __future__ import annotations

import json
import time
import warnings
from typing import Any

from jupyter_serving.client.chat_stream import ChatStream, WholeAnswerStream
from jupyter_serving.client.checks import check_endpoint_name, check_entity_name
from jupyter_serving.client.query import QueryMixin
from jupyter_serving.core.chat import ChatAnswer, collect, deltas_of_response
from jupyter_serving.core.chat_body import chat_body
from jupyter_serving.core.errors import (
    Hint,
    InvalidInputError,
    ServingError,
    StreamNotSupportedError,
    one_line,
)

_NO_STREAM = ("does not stream", "not support stream", "streaming is not supported", "does not support streaming",
              "predict_stream")


def _logs_hint(name: str) -> Hint:
    return Hint(python=f"See the model's logs with `client.logs('{name}')`.", magic=f"See `%serve logs {name}`.")


def _sdk_error(response: Any) -> BaseException:
    """The databricks-sdk exception for an error answer (as the SDK itself would raise it)."""
    try:
        from databricks.sdk.errors.parser import _Parser

        err = _Parser().get_api_error(response)
        if err is not None:
            return err
    except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover - other SDK versions
        pass
    from databricks.sdk.errors import DatabricksError

    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    return DatabricksError(body.get("message") or response.text[:300] or f"HTTP {response.status_code}",
                           error_code=body.get("error_code"))


class ChatMixin(QueryMixin):
    def openai(self, **kwargs: Any):
        """The official `openai.OpenAI` client bound to this backend (`get_open_ai_client()`): use the
        endpoint name as `model`, e.g. `client.openai().chat.completions.create(model="my-llm", ...)`."""
        try:
            import openai  # noqa: F401 - the SDK imports it itself; checked here for a clear message
        except ImportError:
            raise InvalidInputError("The openai package is not installed", "Install it with `pip install openai`."
                                    ) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the SDK points at databricks-openai
            return self.workspace.serving_endpoints.get_open_ai_client(**kwargs)

    def endpoint_task(self, name: str) -> str | None:
        """The endpoint's task (e.g. "llm/v1/chat", "agent/v1/responses"); None for a custom model."""
        return self.get(name).raw.get("task")  # type: ignore[attr-defined]

    def chat(self, name: str, messages: Any, *, stream: bool = True, entity: str | None = None,
             system: str | None = None, temperature: float | None = None, max_tokens: int | None = None,
             stop: Any = None, task: str | None = None, timeout: float | None = None,
             **extra: Any) -> ChatStream | ChatAnswer:
        """One chat turn with endpoint `name` (or one served entity of it).

        `messages`: a string, a list of messages, or a whole body ({"messages": ...} / {"input": ...});
        the body is written for the endpoint's task (`task=` skips reading it): `messages` for chat
        models and ChatAgent, `input` for ResponsesAgent. `extra` keys go into the body (e.g.
        `custom_inputs={...}`, `client_request_id=...`). With `stream` (the default): a `ChatStream`
        of `ChatDelta`s as they arrive, whose `.answer` is the `ChatAnswer` once it ends (`close()` ends
        it early). Without: the `ChatAnswer`. `timeout`: seconds to wait for the answer (for a stream:
        between two pieces).
        """
        check_endpoint_name(name)
        if entity is not None:
            check_entity_name(entity)
        if task is None:
            task = self.endpoint_task(name)
        body = chat_body(messages, task=task, system=system, temperature=temperature, max_tokens=max_tokens,
                         stop=stop, stream=stream, extra=extra)
        timeout = float(timeout if timeout is not None else self.query_timeout)
        if timeout <= 0:
            raise InvalidInputError(f"Timeout must be positive, got {timeout:g}",
                                    Hint(python="e.g. timeout=30.", magic="e.g. --timeout 30."))
        if not stream:
            return self._chat_once(name, body, entity, timeout)
        return self.chat_stream(name, body, entity=entity, timeout=timeout)

    def _chat_once(self, name: str, body: dict, entity: str | None, timeout: float) -> ChatAnswer:
        result = self.query(name, body, entity=entity, timeout=timeout)
        collector = collect(deltas_of_response(result.response), name)
        return collector.answer(total_ms=result.latency_ms, served_entity=result.served_model_name,
                                streamed=False, raw=result.response)

    def chat_stream(self, name: str, body: dict, *, entity: str | None = None,
                    timeout: float | None = None) -> ChatStream:
        """Stream the answer to `body` as sent (with "stream": true added): a `ChatStream`."""
        import requests

        check_endpoint_name(name)
        timeout = float(timeout if timeout is not None else self.query_timeout)
        body = {**body, "stream": True}
        path = (f"/serving-endpoints/{name}/served-models/{entity}/invocations" if entity
                else f"/serving-endpoints/{name}/invocations")
        headers = {**self._headers(content=True), **self.workspace.config.authenticate(),
                   "Accept": "text/event-stream"}
        started = time.perf_counter()
        try:
            response = requests.post(self.host + path, data=json.dumps(body).encode(), headers=headers, stream=True,
                                     timeout=(min(10.0, timeout), timeout))
        except requests.RequestException as err:
            raise self._query_error(err, name, entity, timeout) from None
        if response.status_code != 200:
            raise self._stream_refused(response, name, entity, timeout)
        served = response.headers.get("served-model-name") or entity
        kwargs = dict(name=name, started=started, served_entity=served, timeout=timeout, logs_hint=_logs_hint(name),
                      on_transport_error=lambda err: self._query_error(err, name, entity, timeout))
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return self._whole_answer(response, kwargs)
        return ChatStream(response, **kwargs)

    def _whole_answer(self, response: Any, kwargs: dict) -> ChatStream:
        """A stream request answered with one JSON body (a model that answers whole): one delta."""
        from jupyter_serving.core.errors import BackendError

        try:
            body = response.json()
        except ValueError:
            raise BackendError(f"Endpoint '{kwargs['name']}' answered something that is neither events nor JSON",
                               _logs_hint(kwargs["name"])) from None
        finally:
            response.close()
        return WholeAnswerStream(body, **kwargs)

    def _stream_refused(self, response: Any, name: str, entity: str | None, timeout: float) -> ServingError:
        """Why the endpoint refused to stream, as one line."""
        try:
            err = _sdk_error(response)
        finally:
            response.close()
        message = one_line(getattr(err, "message", None) or str(err))
        if response.status_code == 400 and any(k in message.lower() for k in _NO_STREAM):
            return StreamNotSupportedError(f"Endpoint '{name}' does not stream: {message}", Hint(
                python=f"Ask without a stream: `client.chat('{name}', ..., stream=False)`.",
                magic="Ask without a stream: use --no-stream."), error_code=getattr(err, "error_code", None))
        return self._query_error(err, name, entity, timeout)


__all__ = ["ChatMixin", "ChatStream"]
