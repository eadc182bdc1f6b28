"""Chat request bodies for an endpoint's task, and the DataFrame of a chat answer. Pure: no I/O.

`chat_body(messages, task=...)` writes the body each kind of model takes:

| dialect      | tasks                           | body                                                         |
|--------------|---------------------------------|--------------------------------------------------------------|
| chat         | llm/v1/chat, agent/v1/chat      | messages, temperature, max_tokens, stop                      |
| responses    | agent/v1/responses              | input, temperature, max_output_tokens (no stop sequences)    |
| chat_agent   | agent/v2/chat                   | messages; temperature, max_tokens, stop in custom_inputs     |
| completions  | llm/v1/completions              | prompt, temperature, max_tokens, stop                        |

An endpoint without a task (a custom model) gets the chat dialect, or the responses one when the given
body has `input` and no `messages`. MLflow's ChatAgent takes no sampling parameters of its own, so they
go to the agent in `custom_inputs`, where an agent reads what it supports.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jupyter_serving.core.errors import Hint, InvalidInputError

CHAT, RESPONSES, CHAT_AGENT, COMPLETIONS = "chat", "responses", "chat_agent", "completions"
TASK_DIALECTS = {"llm/v1/chat": CHAT, "agent/v1/chat": CHAT, "agent/v1/responses": RESPONSES,
                 "agent/v2/chat": CHAT_AGENT, "llm/v1/completions": COMPLETIONS}
#: Tasks whose endpoints answer chat turns (`%%query` with a `messages`/`input` body streams them).
CHAT_TASKS = frozenset(t for t, d in TASK_DIALECTS.items() if d != COMPLETIONS)
ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
_MESSAGE_HINT = Hint(python="Pass a string, or messages like [{'role': 'user', 'content': 'hi'}].",
                     magic='Write --chat "text", or a body like {"messages": [{"role": "user", "content": "hi"}]}.')


def dialect_of(task: str | None, body: Mapping | None = None) -> str:
    """The body dialect for an endpoint serving `task` (see the module docstring)."""
    if task in TASK_DIALECTS:
        return TASK_DIALECTS[task]
    if task == "llm/v1/embeddings":
        raise InvalidInputError("The endpoint serves embeddings (task llm/v1/embeddings), not chat", Hint(
            python="Query it with `client.query(name, {'input': [...]})`.",
            magic='Query it with `%%query NAME` and a body like {"input": ["text"]}.'))
    if body is not None and "input" in body and "messages" not in body:
        return RESPONSES
    return CHAT


def _message(value: Any, i: int) -> dict:
    if isinstance(value, str):
        return {"role": "user", "content": value}
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return {"role": value[0], "content": value[1]}
    if isinstance(value, Mapping) and (value.get("role") in ROLES or value.get("type")):
        return dict(value)
    raise InvalidInputError(f"Message {i + 1} is not a chat message (a dict with a role and content, got "
                            f"{type(value).__name__})", _MESSAGE_HINT)


def normalize_messages(messages: Any) -> list[dict]:
    """A string (one user message), a message dict, `(role, content)` pairs or a list of dicts -> messages."""
    if isinstance(messages, (str, Mapping)):
        messages = [messages]
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidInputError("No messages to send", _MESSAGE_HINT)
    return [_message(m, i) for i, m in enumerate(messages)]


def _text_of(messages: list[dict]) -> str:
    parts = []
    for m in messages:
        content = m.get("content")
        parts.append(content if isinstance(content, str) else "".join(
            p.get("text", "") for p in content or [] if isinstance(p, Mapping)))
    return "\n".join(p for p in parts if p)


def _split_body(messages: Any) -> tuple[list[dict], dict]:
    """(messages, the rest of the body) of a body dict (`messages` or `input`), or of plain messages."""
    if isinstance(messages, Mapping) and any(k in messages for k in ("messages", "input", "prompt")):
        body = dict(messages)
        turn = body.pop("messages", None)
        if turn is None:
            turn = body.pop("input", None)
        if turn is None:
            turn = body.pop("prompt")
        return normalize_messages(turn), body
    return normalize_messages(messages), {}


def _stops(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    stops = [stop] if isinstance(stop, str) else list(stop)
    if not all(isinstance(s, str) and s for s in stops):
        raise InvalidInputError("Stop sequences must be non-empty strings", "e.g. stop=['\\n\\n'].")
    return stops


def _place(body: dict, dialect: str, temperature: float | None, max_tokens: int | None,
           stop: list[str] | None) -> None:
    """Put the sampling parameters where the dialect takes them."""
    given = {k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens), ("stop", stop))
             if v is not None}
    if dialect == CHAT_AGENT:
        if given:
            body["custom_inputs"] = {**given, **dict(body.get("custom_inputs") or {})}
        return
    if dialect == RESPONSES:
        if "stop" in given:
            raise InvalidInputError("A ResponsesAgent takes no stop sequences (the Responses API has none)",
                                    "Leave stop out, or pass it to the agent in custom_inputs.")
        if "max_tokens" in given:
            given["max_output_tokens"] = given.pop("max_tokens")
    body.update(given)


def chat_body(messages: Any, *, task: str | None = None, system: str | None = None,
              temperature: float | None = None, max_tokens: int | None = None, stop: Any = None,
              stream: bool = False, extra: Mapping[str, Any] | None = None) -> dict:
    """The request body of one chat turn for an endpoint serving `task`.

    `messages`: a string, a message dict, a list of messages, or a whole body (`{"messages": ...}` or
    `{"input": ...}`, its other keys kept). `system` is put first as a system message; `extra` keys
    (e.g. `custom_inputs`, `client_request_id`, `tools`) are added to the body (`custom_inputs` merged).
    """
    turn, body = _split_body(messages)
    dialect = dialect_of(task, messages if isinstance(messages, Mapping) else None)
    if system:
        turn = [{"role": "system", "content": system}, *turn]
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
        raise InvalidInputError(f"max_tokens must be a positive integer, got {max_tokens!r}", "e.g. max_tokens=256.")
    for key, value in dict(extra or {}).items():
        if key == "custom_inputs" and isinstance(body.get(key), Mapping):
            body[key] = {**body[key], **dict(value)}
        else:
            body[key] = value
    _place(body, dialect, temperature, max_tokens, _stops(stop))
    if dialect == COMPLETIONS:
        body["prompt"] = _text_of(turn)
    else:
        body["input" if dialect == RESPONSES else "messages"] = turn
    body.pop("stream", None)
    if stream:
        body["stream"] = True
    return body


def is_chat_body(body: Any) -> bool:
    """Whether a parsed query body is one chat turn (`messages`, or `input` items with roles)."""
    if not isinstance(body, Mapping):
        return False
    if isinstance(body.get("messages"), list):
        return True
    items = body.get("input")
    return isinstance(items, list) and bool(items) and all(isinstance(i, Mapping) for i in items)


# --------------------------------------------------------------------------------------------------
# The answer as a DataFrame

ANSWER_COLUMNS = ["index", "text", "finish_reason", "prompt_tokens", "completion_tokens", "ttft_ms", "total_ms",
                  "served_entity"]


def answer_frame(answer: Any):
    """One row per choice of a `ChatAnswer` (columns `ANSWER_COLUMNS`, then `tool_calls` and
    `tool_results` when the turn has any), as a `QueryFrame` (its footer: latency, served entity)."""
    import pandas as pd

    from jupyter_serving.core.results import QueryFrame

    rows = [{"index": c.index, "text": c.text, "finish_reason": c.finish_reason} for c in answer.choices]
    frame = pd.DataFrame(rows, columns=["index", "text", "finish_reason"])
    for key in ("prompt_tokens", "completion_tokens"):  # the turn's counts, on its first row
        frame[key] = pd.array([getattr(answer, key)] + [None] * (len(frame) - 1), dtype="Int64")
    for key in ("ttft_ms", "total_ms"):
        value = getattr(answer, key)
        frame[key] = [round(value, 1) if value is not None else None] * len(frame)
    frame["served_entity"] = answer.served_entity
    if answer.tool_calls or any(c.tool_calls for c in answer.choices):
        frame["tool_calls"] = [[t.describe() for t in (answer.tool_calls if c.index == 0 else c.tool_calls)]
                               for c in answer.choices]
    if answer.tool_results:
        frame["tool_results"] = [[r.output for r in answer.tool_results] if c.index == 0 else []
                                 for c in answer.choices]
    qframe = QueryFrame(frame)
    qframe.latency_ms = answer.total_ms
    qframe.served_model_name = answer.served_entity
    qframe.endpoint = answer.endpoint
    return qframe


__all__ = ["ANSWER_COLUMNS", "CHAT", "CHAT_AGENT", "CHAT_TASKS", "COMPLETIONS", "RESPONSES", "TASK_DIALECTS",
           "answer_frame", "chat_body", "dialect_of", "is_chat_body", "normalize_messages"]
