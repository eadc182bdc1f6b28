"""Chat answers in one shape, whatever the model's dialect. Pure: no I/O.

Three stream dialects reach a notebook from `POST .../invocations` with `"stream": true` (server-sent
events, `data: {chunk}` ... `data: [DONE]`), and the same three answer without a stream:

- chat completions (ChatModel, foundation and external models): `chat.completion.chunk` with
  `choices[].delta.content` / `.tool_calls` (pieces of a call, merged by their `index`);
- MLflow ResponsesAgent: events `response.output_text.delta` (`delta`), `response.output_item.done`
  (`item`: a message, a `function_call` or a `function_call_output`), `response.completed`;
- MLflow ChatAgent: `{"delta": {"role", "content", "tool_calls", "tool_call_id"}, "finish_reason", "usage"}`.

`ChatCollector.feed(chunk)` turns each chunk into `ChatDelta`s (a text piece, tool calls, tool results,
a finish reason, token usage) and keeps the running answer; `answer()` is the `ChatAnswer` summary
(text, the ordered items of an agent's turn, finish reason, tokens, time to first token, latency,
served entity). `deltas_of_response(body)` does the same for a whole (non-streamed) answer.
`core.sse.SseDecoder` splits the bytes of a server-sent-event stream into its `data` payloads.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from jupyter_serving.core.tokens import usage_of


@dataclass(frozen=True)
class ToolCall:
    """A call the model asks for. `arguments` is the JSON text the model wrote; `index` places the
    pieces of one call in a chat-completions stream (merged by `ChatCollector`)."""

    name: str | None
    arguments: str = ""
    id: str | None = None
    index: int | None = None
    kind = "tool_call"

    def describe(self) -> str:
        return f"{self.name or '?'}({self.arguments})"


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned (an agent's `function_call_output`, or a ChatAgent `tool` message)."""

    output: str
    call_id: str | None = None
    name: str | None = None
    kind = "tool_result"


@dataclass(frozen=True)
class TextPart:
    text: str
    kind = "text"


Item = TextPart | ToolCall | ToolResult


@dataclass(frozen=True)
class ChatDelta:
    """One piece of an answer as it arrives. `index` is the choice (0 but for `n` > 1); the token
    counts are set on the chunk that reports usage; `elapsed_ms` is when it arrived (from the request)."""

    text: str = ""
    index: int = 0
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    elapsed_ms: float | None = None

    @property
    def has_content(self) -> bool:
        return bool(self.text or self.tool_calls or self.tool_results)


@dataclass(frozen=True)
class ChatChoice:
    index: int
    text: str
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


def _text(content: Any) -> str:
    """A message's content: a string, or content parts (`{"type": "text"|"output_text", "text": ...}`)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p if isinstance(p, str) else str(p.get("text") or "")
                       for p in content if isinstance(p, (str, dict)))
    return ""


def _str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _tool_calls(calls: Any) -> tuple[ToolCall, ...]:
    """OpenAI-style `tool_calls`: `[{"index", "id", "function": {"name", "arguments"}}]`."""
    out = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, Mapping):
            continue
        fn = call.get("function") if isinstance(call.get("function"), Mapping) else call
        index = call.get("index")
        out.append(ToolCall(fn.get("name"), _str(fn.get("arguments")), call.get("id"),
                            index if isinstance(index, int) else None))
    return tuple(out)


def _usage(body: Any) -> dict:
    found = usage_of(body)
    if found is None and isinstance(body, Mapping):
        found = usage_of(body.get("custom_outputs"))
    return {} if found is None else {"prompt_tokens": found[0], "completion_tokens": found[1]}


def _finish(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    reason = body.get("finish_reason")
    if reason is None and isinstance(body.get("custom_outputs"), Mapping):
        reason = body["custom_outputs"].get("finish_reason")
    return reason if isinstance(reason, str) else None


def _choice_deltas(body: Mapping, field_name: str) -> list[ChatDelta]:
    """Chat completions (`choices[].delta` in a chunk, `choices[].message` in an answer) and completions."""
    out = []
    for i, choice in enumerate(body.get("choices") or []):
        if not isinstance(choice, Mapping):
            continue
        inner = choice.get(field_name)
        inner = inner if isinstance(inner, Mapping) else {}
        text = _text(inner.get("content")) if inner else _str(choice.get("text"))
        index = choice.get("index", i)
        out.append(ChatDelta(text=text, index=index if isinstance(index, int) else i,
                             tool_calls=_tool_calls(inner.get("tool_calls")),
                             finish_reason=choice.get("finish_reason")))
    usage = _usage(body)
    if usage:
        if out:
            out[0] = replace(out[0], **usage)
        else:
            out.append(ChatDelta(**usage))
    return out


def _agent_message(message: Mapping) -> ChatDelta:
    """A ChatAgent message or delta: a `tool` message is a tool result; else text and tool calls."""
    if message.get("role") == "tool":
        return ChatDelta(tool_results=(ToolResult(_text(message.get("content")), message.get("tool_call_id"),
                                                  message.get("name")),))
    return ChatDelta(text=_text(message.get("content")), tool_calls=_tool_calls(message.get("tool_calls")))


def _item_delta(item: Mapping) -> ChatDelta | None:
    """A ResponsesAgent output item: a message (its text), a function call or a function call's output."""
    kind = item.get("type")
    if kind == "function_call":
        return ChatDelta(tool_calls=(ToolCall(item.get("name"), _str(item.get("arguments")),
                                              item.get("call_id") or item.get("id")),))
    if kind == "function_call_output":
        return ChatDelta(tool_results=(ToolResult(_str(item.get("output")), item.get("call_id")),))
    if kind == "message" or "content" in item:
        return ChatDelta(text=_text(item.get("content")))
    return None


_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _completed(response: Mapping) -> ChatDelta:
    """`response.completed` / `response.incomplete`: usage and why it ended."""
    details = response.get("incomplete_details") if isinstance(response.get("incomplete_details"), Mapping) else {}
    reason = {"completed": "stop"}.get(response.get("status")) or _INCOMPLETE.get(details.get("reason"))
    return ChatDelta(finish_reason=reason, **_usage(response))


def _with_end(deltas: list[ChatDelta], body: Mapping) -> list[ChatDelta]:
    """`deltas` and, when `body` carries them, its finish reason and usage (on a delta of their own)."""
    finish, usage = _finish(body), _usage(body)
    if finish or usage:
        deltas.append(ChatDelta(finish_reason=finish, **usage))
    return deltas


def deltas_of_response(body: Any) -> list[ChatDelta]:
    """The deltas of a whole answer: chat completions / completions (`choices`), ResponsesAgent
    (`output` items), ChatAgent (`messages`), or a model's bare text prediction."""
    if not isinstance(body, Mapping):
        return [ChatDelta(text=body)] if isinstance(body, str) else []
    if isinstance(body.get("choices"), list):
        return _choice_deltas(body, "message")
    if isinstance(body.get("output"), list):
        items = [_item_delta(i) for i in body["output"] if isinstance(i, Mapping)]
        return _with_end([d for d in items if d is not None], body)
    if isinstance(body.get("messages"), list):
        return _with_end([_agent_message(m) for m in body["messages"] if isinstance(m, Mapping)], body)
    predictions = body.get("predictions")
    if isinstance(predictions, list) and len(predictions) == 1:
        predictions = predictions[0]
    return [ChatDelta(text=predictions)] if isinstance(predictions, str) else []


def stream_error(chunk: Any) -> str | None:
    """The message of a chunk that reports a failure mid-stream (Databricks' `error_code`/`message`,
    a Responses `error` / `response.failed` event); None for any other chunk."""
    if not isinstance(chunk, Mapping):
        return None
    if "error_code" in chunk and "message" in chunk:
        return f"{chunk['error_code']}: {chunk['message']}"
    if chunk.get("type") == "error":
        return str(chunk.get("message") or chunk.get("code") or "error")
    if chunk.get("type") == "response.failed":
        error = (chunk.get("response") or {}).get("error") or {}
        return str(error.get("message") or "the response failed")
    if isinstance(chunk.get("error"), Mapping) and not chunk.get("choices"):
        return str(chunk["error"].get("message") or chunk["error"])
    return None


@dataclass
class _Choice:
    parts: list = field(default_factory=list)  # TextPart | ToolCall | ToolResult, merged as they come
    finish_reason: str | None = None


class ChatCollector:
    """Parses stream chunks into deltas and keeps the answer so far (`answer()`, `transcript()`)."""

    def __init__(self, endpoint: str | None = None):
        self.endpoint = endpoint
        self._choices: dict[int, _Choice] = {}
        self._streamed_items: set[str] = set()  # ResponsesAgent items whose text came as deltas
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.first_ms: float | None = None
        self.chunks: list = []

    # -- parsing ---------------------------------------------------------------------------------
    def parse(self, chunk: Any) -> list[ChatDelta]:
        """The deltas of one stream chunk (without adding them). A ResponsesAgent message item whose
        text already came as `output_text.delta` events adds no text again."""
        if not isinstance(chunk, Mapping):
            return []
        if "choices" in chunk:
            return _choice_deltas(chunk, "delta")
        kind = chunk.get("type")
        if isinstance(kind, str):
            return self._responses_event(kind, chunk)
        if isinstance(chunk.get("delta"), Mapping):
            return _with_end([_agent_message(chunk["delta"])], chunk)
        return []

    def _responses_event(self, kind: str, event: Mapping) -> list[ChatDelta]:
        if kind == "response.output_text.delta":
            if event.get("item_id"):
                self._streamed_items.add(event["item_id"])
            return [ChatDelta(text=_str(event.get("delta")))]
        if kind == "response.output_item.done" and isinstance(event.get("item"), Mapping):
            item = event["item"]
            delta = _item_delta(item)
            if delta is not None and item.get("type") == "message" and item.get("id") in self._streamed_items:
                delta = None  # its text came as deltas already
            return _with_end([delta] if delta is not None else [], event)
        if kind in ("response.completed", "response.incomplete") and isinstance(event.get("response"), Mapping):
            return [_completed(event["response"])]
        return []

    def feed(self, chunk: Any, elapsed_ms: float | None = None) -> list[ChatDelta]:
        """Parse one chunk, add its deltas (stamped with `elapsed_ms`) and return them."""
        self.chunks.append(chunk)
        deltas = self.parse(chunk)
        if elapsed_ms is not None:
            deltas = [replace(d, elapsed_ms=elapsed_ms) for d in deltas]
        for delta in deltas:
            self.add(delta)
        return deltas

    # -- accumulating ----------------------------------------------------------------------------
    def add(self, delta: ChatDelta) -> None:
        choice = self._choices.setdefault(delta.index, _Choice())
        if delta.has_content and self.first_ms is None and delta.elapsed_ms is not None:
            self.first_ms = delta.elapsed_ms
        if delta.text:
            if choice.parts and isinstance(choice.parts[-1], TextPart):
                choice.parts[-1] = TextPart(choice.parts[-1].text + delta.text)
            else:
                choice.parts.append(TextPart(delta.text))
        for call in delta.tool_calls:
            self._add_call(choice, call)
        choice.parts.extend(delta.tool_results)
        if delta.finish_reason:
            choice.finish_reason = delta.finish_reason
        if delta.prompt_tokens is not None:
            self.prompt_tokens = delta.prompt_tokens
        if delta.completion_tokens is not None:
            self.completion_tokens = delta.completion_tokens

    @staticmethod
    def _add_call(choice: _Choice, call: ToolCall) -> None:
        """A call, or the next piece of one (same `index`, no other `id`) in a chat-completions stream."""
        if call.index is not None:
            for i, part in enumerate(choice.parts):
                if (isinstance(part, ToolCall) and part.index == call.index
                        and (call.id is None or part.id in (None, call.id))):
                    choice.parts[i] = ToolCall(part.name or call.name, part.arguments + call.arguments,
                                               part.id or call.id, part.index)
                    return
        choice.parts.append(call)

    def items(self, index: int = 0) -> tuple[Item, ...]:
        choice = self._choices.get(index)
        return tuple(choice.parts) if choice else ()

    def text(self, index: int = 0) -> str:
        return "".join(p.text for p in self.items(index) if isinstance(p, TextPart))

    def transcript(self) -> str:
        return transcript(self.items())

    def answer(self, *, total_ms: float | None = None, served_entity: str | None = None, streamed: bool = True,
               stopped: bool = False, raw: Any = None) -> ChatAnswer:
        choices = tuple(
            ChatChoice(i, "".join(p.text for p in c.parts if isinstance(p, TextPart)), c.finish_reason,
                       tuple(p for p in c.parts if isinstance(p, ToolCall)))
            for i, c in sorted(self._choices.items()))
        ttft = self.first_ms if streamed else total_ms
        return ChatAnswer(self.endpoint, choices or (ChatChoice(0, ""),), self.items(), self.prompt_tokens,
                          self.completion_tokens, ttft, total_ms, served_entity, streamed, stopped,
                          raw if raw is not None else (self.chunks if streamed else None))


def collect(deltas: Iterable[ChatDelta], endpoint: str | None = None) -> ChatCollector:
    """A collector holding `deltas` (e.g. those of `deltas_of_response`)."""
    collector = ChatCollector(endpoint)
    for delta in deltas:
        collector.add(delta)
    return collector


def _results_names(items: Iterable[Item]) -> dict[str, str]:
    return {p.id: p.name for p in items if isinstance(p, ToolCall) and p.id and p.name}


def transcript(items: Iterable[Item]) -> str:
    """An agent's turn as readable text: the text, `→ name(arguments)` for each tool call and
    `← name: output` for each tool result, in the order they came."""
    items = list(items)
    names = _results_names(items)
    out: list[str] = []
    for part in items:
        if isinstance(part, TextPart):
            out.append(part.text)
            continue
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        if isinstance(part, ToolCall):
            out.append(f"→ {part.describe()}\n")
        else:
            name = part.name or names.get(part.call_id or "") or "tool"
            out.append(f"← {name}: {part.output}\n")
    return "".join(out)


@dataclass(frozen=True)
class ChatAnswer:
    """The summary of one chat turn. `items` are choice 0's text parts, tool calls and tool results in
    order; `ttft_ms` is the time to the first piece (the whole answer's latency without a stream);
    `stopped` says the stream was closed before it ended; `raw` is the answer (or the stream's chunks)."""

    endpoint: str | None
    choices: tuple[ChatChoice, ...]
    items: tuple[Item, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    served_entity: str | None = None
    streamed: bool = False
    stopped: bool = False
    raw: Any = None

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(p for p in self.items if isinstance(p, ToolCall))

    @property
    def tool_results(self) -> tuple[ToolResult, ...]:
        return tuple(p for p in self.items if isinstance(p, ToolResult))

    def transcript(self) -> str:
        return transcript(self.items)

    @property
    def frame(self):
        """One row per choice: index, text, finish_reason, prompt_tokens, completion_tokens, ttft_ms,
        total_ms, served_entity (and tool_calls / tool_results when there are any)."""
        from jupyter_serving.core.chat_body import answer_frame

        return answer_frame(self)

    df = frame

    def _repr_html_(self):
        return self.frame._repr_html_()

    def __repr__(self) -> str:
        return repr(self.frame)


__all__ = ["ChatAnswer", "ChatChoice", "ChatCollector", "ChatDelta", "TextPart", "ToolCall",
           "ToolResult", "collect", "deltas_of_response", "stream_error", "transcript"]
