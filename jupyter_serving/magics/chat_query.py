"""`%%query NAME` on a chat model or an agent: the answer streams into one display updated in place
(printed piece by piece outside a kernel), then the cell's value is the answer's DataFrame (text,
finish_reason, prompt and completion tokens, TTFT, total latency, served entity).

Used for `--chat TEXT`, and for a body with `messages` or `input` items sent to an endpoint whose task
is a chat or agent task (or that asks for `"stream": true`). `--no-stream` sends one request instead, as
does a model that does not stream (unless the body asked for `"stream": true`: then that is the error).
Agent turns are shown readably: the text, `→ tool(arguments)` for each tool call, `← tool: output` for
each result. Ctrl-C (or the kernel's interrupt) ends the stream and keeps what came.
"""
from __future__ import annotations

import json
import time
from typing import Any

from jupyter_serving.core.chat_body import CHAT_TASKS, is_chat_body
from jupyter_serving.core.errors import InvalidInputError, StreamNotSupportedError

UPDATE_EVERY_S = 0.03  # at most ~30 display updates a second (a fast model sends hundreds of tokens)


class LiveText:
    """One text display, updated in place in a kernel; elsewhere the new text is printed as it comes."""

    def __init__(self) -> None:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:  # pragma: no cover - IPython is a dependency
            shell = None
        self.rich = getattr(shell, "kernel", None) is not None
        self.handle = None
        self.shown = ""
        self._last = 0.0

    def update(self, text: str, final: bool = False) -> None:
        if text == self.shown or (not text and self.handle is None):
            return
        if not self.rich:
            new = text[len(self.shown):] if text.startswith(self.shown) else "\n" + text
            print(new, end="", flush=True)
            self.shown = text
            return
        now = time.monotonic()
        if not final and self.handle is not None and now - self._last < UPDATE_EVERY_S:
            return
        from IPython.display import display

        bundle = {"text/plain": text}
        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)
        self.shown, self._last = text, now

    def finish(self, text: str, note: str = "") -> None:
        self.update(text + (f"\n{note}" if note else ""), final=True)
        if not self.rich and self.shown:
            print(flush=True)


def wants_chat(opts, request: dict | None, task_of) -> bool:
    """Whether a `%%query` goes the chat way: --chat, or a chat body to a chat/agent endpoint (or one
    that asks for `"stream": true`). `task_of()` reads the endpoint's task (only for a chat body)."""
    if opts.chat is not None:
        return True
    if not is_chat_body(request):
        return False
    return request.get("stream") is True or task_of() in CHAT_TASKS


def cell_fields(cell: str | None, namespace: dict) -> dict:
    """With --chat, the cell (if any) holds more of the body: a JSON object (with `$var`s) or `$var`."""
    from jupyter_serving.core.query_body import _json_error, substitute_variables, unknown_variable

    text = (cell or "").strip()
    if not text:
        return {}
    if text.startswith("$") and text[1:].isidentifier():
        if text[1:] not in namespace:
            raise unknown_variable(text[1:])
        value = namespace[text[1:]]
    else:
        try:
            value = json.loads(substitute_variables(text, namespace))
        except json.JSONDecodeError as err:
            raise _json_error(err, "cell body") from None
    if not isinstance(value, dict):
        raise InvalidInputError("With --chat the cell holds a JSON object of more body fields",
                                'e.g. {"custom_inputs": {"k": 1}} or {"messages": [...earlier turns...]}.')
    return value


def _with_turn(fields: dict, text: str) -> dict:
    """`fields` with the user's text appended to its messages (or `input` items)."""
    key = "input" if "input" in fields and "messages" not in fields else "messages"
    earlier = fields.get(key) or []
    if not isinstance(earlier, list):
        raise InvalidInputError(f"The cell's {key} must be a list of messages",
                                '{"messages": [{"role": "user", "content": "hi"}, ...]}.')
    return {**fields, key: [*earlier, {"role": "user", "content": text}]}


def run_chat(ctx, opts, client, request: dict | None, cell: str | None) -> Any:
    """The chat turn for `%%query`: streamed into one display (unless --no-stream), then its DataFrame."""
    body = request if opts.chat is None else _with_turn(cell_fields(cell, ctx.ns), opts.chat)
    stream = not opts.no_stream and body.get("stream") is not False
    kwargs = dict(entity=opts.entity, system=opts.system, temperature=opts.temperature, max_tokens=opts.max_tokens,
                  stop=opts.stop, timeout=opts.timeout)
    if stream:
        try:
            answer = _streamed(client.chat(opts.name, body, stream=True, **kwargs))
        except StreamNotSupportedError:
            if body.get("stream") is True:  # asked for explicitly: say so
                raise
            stream = False  # streaming was only the default: a model that does not stream answers whole
    if not stream:
        answer = client.chat(opts.name, body, stream=False, **kwargs)
        if answer.tool_calls or answer.tool_results:  # an agent's turn: show it readably
            LiveText().finish(answer.transcript())
    value = answer.raw if opts.raw else answer.frame
    if opts.output:
        ctx.user_ns[opts.output] = value
        return None
    return value


def _streamed(stream):
    live = LiveText()
    note = ""
    try:
        for _ in stream:
            live.update(stream.transcript())
    except KeyboardInterrupt:
        stream.close()
        note = "(stopped: interrupted)"
    finally:
        stream.close()
    live.finish(stream.transcript(), note)
    return stream.answer
