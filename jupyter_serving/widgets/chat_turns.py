"""The chat playground's data: one answer as it streams (`Answer`), folded from the client's deltas,
and its HTML (a user bubble, an answer bubble with tool calls and results, a stats line). Pure: no
widgets, no client.

`absorb(answer, delta)` reads a delta of `client.chat(...)` by duck typing (`text`, `tool_call`,
`tool_result`, `finish_reason`, `usage`), so that the widget keeps working whatever dataclass the
client hands out; `finish(answer, summary)` takes the stream's final summary (tokens, TTFT, latency,
served entity) where the client gives one, and keeps the playground's own measurements otherwise.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_serving.widgets._common import BLUE, GREY, RED, esc

STREAMING, DONE, STOPPED, FAILED = "streaming", "done", "stopped", "failed"


@dataclass
class ToolEvent:
    """A tool call the agent made (`kind` "call": name, arguments) or a tool's result ("result": output)."""

    kind: str
    name: str = ""
    arguments: str = ""
    output: str = ""
    call_id: str = ""
    index: int | None = None  # a chat-completions stream sends one call in pieces with the same index


@dataclass
class Answer:
    """One assistant answer in one column: grows while it streams, then carries its stats."""

    endpoint: str
    entity: str | None = None
    text: str = ""
    tools: list[ToolEvent] = field(default_factory=list)
    state: str = STREAMING
    error: str = ""
    tokens: int | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    finish_reason: str | None = None
    served_entity: str | None = None
    request: list[dict] = field(default_factory=list)  # the messages sent for this answer
    turn: int = 0  # the playground's prompt number (1 for the first)
    pieces: int = 0  # text deltas received (the token count when the model reports no usage)
    started: float = field(default_factory=time.perf_counter)

    @property
    def target(self) -> str:
        return f"{self.endpoint}/{self.entity}" if self.entity else self.endpoint

    @property
    def finished(self) -> bool:
        return self.state != STREAMING


def _get(obj: Any, *names: str) -> Any:
    """The first of `names` that `obj` has (attribute or mapping key) and that is not None."""
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _tool_event(obj: Any, kind: str) -> ToolEvent:
    function = _get(obj, "function")  # OpenAI's {"function": {"name", "arguments"}}
    source = function if function is not None else obj
    index = _get(obj, "index")
    return ToolEvent(kind, name=_text(_get(source, "name")), arguments=_text(_get(source, "arguments")),
                     output=_text(_get(obj, "output", "content", "result")),
                     call_id=_text(_get(obj, "call_id", "id", "tool_call_id")),
                     index=index if isinstance(index, int) else None)


def _add_call(tools: list[ToolEvent], call: ToolEvent) -> None:
    """A call, or the next piece of one (the same `index`, no other id)."""
    if call.index is not None:
        for known in tools:
            if (known.kind == "call" and known.index == call.index
                    and (not call.call_id or known.call_id in ("", call.call_id))):
                known.name = known.name or call.name
                known.arguments += call.arguments
                known.call_id = known.call_id or call.call_id
                return
    tools.append(call)


def usage_tokens(usage: Any) -> int | None:
    """The completion tokens of a usage record (dict or object), else None."""
    if usage is None:
        return None
    value = _get(usage, "completion_tokens", "output_tokens")
    return int(value) if isinstance(value, (int, float)) else None


def absorb(answer: Answer, delta: Any) -> bool:
    """Fold one delta into `answer`; True when it added visible text or a tool event."""
    if isinstance(delta, str):
        delta = {"text": delta}
    shown = False
    text = _get(delta, "text", "content")
    if isinstance(text, str) and text:
        answer.text += text
        answer.pieces += 1
        shown = True
    calls = _get(delta, "tool_calls")
    for call in ([_get(delta, "tool_call")] if calls is None else list(calls)):
        if call is not None:
            _add_call(answer.tools, _tool_event(call, "call"))
            shown = True
    results = _get(delta, "tool_results")
    for result in ([_get(delta, "tool_result")] if results is None else list(results)):
        if result is not None:
            answer.tools.append(_tool_event(result, "result") if not isinstance(result, str)
                                else ToolEvent("result", output=result))
            shown = True
    if shown and answer.ttft_ms is None:  # the first piece: text or a tool call (as the client counts it)
        answer.ttft_ms = (time.perf_counter() - answer.started) * 1000.0
    reason = _get(delta, "finish_reason")
    if isinstance(reason, str) and reason:
        answer.finish_reason = reason
    tokens = _get(delta, "completion_tokens")
    tokens = tokens if isinstance(tokens, int) else usage_tokens(_get(delta, "usage"))
    if tokens is not None:
        answer.tokens = tokens
    return shown


def finish(answer: Answer, summary: Any = None, *, state: str = DONE, error: str = "") -> Answer:
    """Close `answer`: its final state, and the stats of the stream's summary where it has them."""
    answer.latency_ms = (time.perf_counter() - answer.started) * 1000.0
    if summary is not None:
        tokens = _get(summary, "tokens", "completion_tokens", "output_tokens")
        if isinstance(tokens, (int, float)):
            answer.tokens = int(tokens)
        elif answer.tokens is None:
            answer.tokens = usage_tokens(_get(summary, "usage"))
        for attr, names in (("ttft_ms", ("ttft_ms",)), ("latency_ms", ("total_ms", "latency_ms")),
                            ("finish_reason", ("finish_reason",)),
                            ("served_entity", ("served_entity", "served_model_name"))):
            value = _get(summary, *names)
            if value is not None and (attr != "latency_ms" or state == DONE):
                setattr(answer, attr, value)
        text = _get(summary, "text")
        if state == DONE and isinstance(text, str) and len(text) > len(answer.text):
            answer.text = text
    if answer.tokens is None and answer.pieces:
        answer.tokens = answer.pieces
    answer.state, answer.error = state, error
    if state == STOPPED and not answer.finish_reason:
        answer.finish_reason = "stopped"
    return answer


# -- HTML ------------------------------------------------------------------------------------------
BUBBLE = ("border-radius:8px;padding:6px 10px;margin:4px 0;font-size:13px;line-height:1.45;"
          "white-space:pre-wrap;overflow-wrap:anywhere;")
USER_STYLE = BUBBLE + "background:#ddf4ff;border:1px solid #b6e3ff;margin-left:24px"
ANSWER_STYLE = BUBBLE + "background:#f6f8fa;border:1px solid #d0d7de;margin-right:24px"
SYSTEM_STYLE = BUBBLE + f"background:#fff;border:1px dashed #d0d7de;color:{GREY};font-size:12px"
TOOL_STYLE = ("font-family:var(--jp-code-font-family,monospace);font-size:12px;background:#fff8c5;"
              "border-left:3px solid #9a6700;padding:3px 6px;margin:3px 0;white-space:pre-wrap;"
              "overflow-wrap:anywhere")
RESULT_STYLE = TOOL_STYLE.replace("#fff8c5", "#dafbe1").replace("#9a6700", "#1a7f37")


def user_html(text: str) -> str:
    return f'<div class="jupyter-serving-chat-user" style="{USER_STYLE}">{esc(text)}</div>'


def system_html(text: str) -> str:
    return f'<div style="{SYSTEM_STYLE}"><b>system</b> · {esc(text)}</div>'


def _tool_html(event: ToolEvent, names: dict[str, str]) -> str:
    if event.kind == "call":
        return (f'<div class="jupyter-serving-chat-tool" style="{TOOL_STYLE}" title="tool call">→ '
                f'<b>{esc(event.name or "tool")}</b>({esc(event.arguments)})</div>')
    name = event.name or names.get(event.call_id, "")
    return (f'<div class="jupyter-serving-chat-tool-result" style="{RESULT_STYLE}" title="tool result">← '
            f'{esc(name + ": " if name else "")}{esc(event.output)}</div>')


def stats_text(answer: Answer) -> str:
    """`12 tokens · TTFT 105 ms · 1.32 s · stop · served by a-1` (what is known so far)."""
    parts = []
    tokens = answer.tokens if answer.tokens is not None else (answer.pieces if answer.pieces else None)
    if tokens is not None:
        parts.append(f"{tokens} token{'s' if tokens != 1 else ''}")
    if answer.ttft_ms is not None:
        parts.append(f"TTFT {answer.ttft_ms:.0f} ms")
    if answer.latency_ms is not None and answer.finished:
        parts.append(f"{answer.latency_ms / 1000:.2f} s")
    if answer.finish_reason and answer.state != STOPPED:
        parts.append(f"finish: {answer.finish_reason}")
    if answer.served_entity:
        parts.append(f"served by {answer.served_entity}")
    return " · ".join(parts)


def _state_html(answer: Answer) -> str:
    if answer.state == STREAMING:
        return f'<span style="color:{BLUE}">● streaming</span>'
    if answer.state == STOPPED:
        return f'<span class="jupyter-serving-chat-stopped" style="color:{RED};font-weight:600">■ stopped</span>'
    return ""


def answer_html(answer: Answer) -> str:
    """The answer bubble: tool events, the text so far, a one-line error, then the stats line."""
    if answer.state == FAILED:
        return (f'<div class="jupyter-serving-chat-error" style="color:{RED};background:#ffebe9;'
                f'border-left:3px solid {RED};padding:4px 8px;margin:4px 24px 4px 0;font-size:13px">'
                f'✖ {esc(answer.error)}</div>')
    names = {t.call_id: t.name for t in answer.tools if t.kind == "call" and t.call_id and t.name}
    body = "".join(_tool_html(t, names) for t in answer.tools)
    if answer.text or not answer.tools:
        cursor = "▍" if answer.state == STREAMING else ""
        body += f'<span class="jupyter-serving-chat-text">{esc(answer.text)}</span>{cursor}'
    stats = " · ".join(p for p in (_state_html(answer), esc(stats_text(answer))) if p)
    return (f'<div class="jupyter-serving-chat-answer" style="{ANSWER_STYLE}">{body}</div>'
            f'<div class="jupyter-serving-chat-stats" style="font-size:11px;color:{GREY};margin:0 0 6px 2px">'
            f"{stats}</div>")
