"""`ChatPlayground("chat")`: a multi-turn chat with streaming endpoints (what `%serve chat` shows).

    ChatPlayground("chat")                         # one endpoint
    ChatPlayground("chat-a", "chat-b")             # side by side: the same prompt, answered at once
    ChatPlayground("ab/ab-1", "ab/ab-2")           # two served entities of one endpoint
    playground.transcript()                        # a DataFrame: turn, role, endpoint, entity, text, ...

A system prompt, temperature, max_tokens and stop words (and an extra JSON body, e.g. an agent's
`custom_inputs`) go with every prompt. Send (or Enter in the input) sends the prompt to every column
(`chat_column.ChatColumn`, up to three): each streams its answer in its own thread, so the kernel
stays free, and shows its tokens and TTFT. Stop cancels the streams in flight (the partial answers
stay, marked stopped); Clear starts over. "Show code" gives the equivalent openai-client (or
`client.chat`) code for the last request; "Save transcript" stores the transcript DataFrame in
`chat_transcript` (a notebook variable) and shows it.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
from traitlets import Bool, Int, Unicode

from jupyter_serving.widgets._common import BOX_STYLE, GREY, esc, note, resolve_client
from jupyter_serving.widgets.chat_code import ChatTarget, playground_code
from jupyter_serving.widgets.chat_column import ChatColumn

MAX_COLUMNS = 3
CODE_PRE = ('<pre style="background:#f6f8fa;border:1px solid #d0d7de;padding:8px;font-size:12px;'
            'white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0;user-select:text">')


def _targets(names: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for item in names:
        if isinstance(item, str):
            out += item.replace(",", " ").split()
        elif isinstance(item, (list, tuple)):
            out += _targets(item)
        else:
            raise TypeError(f"ChatPlayground takes endpoint names (str), not {type(item).__name__}: "
                            "pass the client as client=...")
    if not out:
        raise ValueError("ChatPlayground needs an endpoint name, e.g. ChatPlayground('chat')")
    if len(out) > MAX_COLUMNS:
        raise ValueError(f"ChatPlayground compares at most {MAX_COLUMNS} endpoints, got {len(out)}")
    return out


def parse_options(temperature: str, max_tokens: str, stop: str, extra: str) -> dict:
    """The request options from the text fields (blank: the model's default); ValueError says which is wrong."""
    options: dict[str, Any] = {}
    if temperature.strip():
        try:
            options["temperature"] = float(temperature)
        except ValueError:
            raise ValueError(f"Temperature must be a number, e.g. 0.7 (got {temperature!r})") from None
        if not 0 <= options["temperature"] <= 2:
            raise ValueError(f"Temperature must be between 0 and 2 (got {temperature})")
    if max_tokens.strip():
        if not max_tokens.strip().isdigit() or int(max_tokens) < 1:
            raise ValueError(f"Max tokens must be a whole number of at least 1 (got {max_tokens!r})")
        options["max_tokens"] = int(max_tokens)
    words = [w.strip() for w in stop.split(",") if w.strip()]
    if words:
        options["stop"] = words
    if extra.strip():
        try:
            body = json.loads(extra)
        except ValueError as err:
            raise ValueError(f"Extra body is not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(body, dict):
            raise ValueError('Extra body must be a JSON object, e.g. {"custom_inputs": {"k": 1}}')
        options.update(body)
    return options


class ChatPlayground(W.VBox):
    """A chat with one to three endpoints (or served entities) side by side.

    Traits: `busy` (an answer is streaming), `turns` (prompts sent), `notice` (the last one-line
    message: a refused send, invalid options)."""

    busy = Bool(False)
    turns = Int(0)
    notice = Unicode("")

    def __init__(self, *names: str | Sequence[str], client: Any = None, system: str = "",
                 temperature: float | None = None, max_tokens: int | None = None,
                 stop: str | Sequence[str] | None = None, extra: dict | None = None,
                 transcript_name: str = "chat_transcript", render_interval: float = 0.05, **kwargs):
        targets = _targets(names)
        self.client = resolve_client(client)
        self.render_interval = render_interval
        self.transcript_name = transcript_name
        self.saved = None  # the DataFrame "Save transcript" stored last
        self._build_controls(system, temperature, max_tokens, stop, extra)
        self.columns_box = W.HBox(layout=W.Layout(width="100%", align_items="stretch", margin="6px 0"))
        self.columns: list[ChatColumn] = []
        for target in targets:
            self._add(target)
        super().__init__([self.title, self.system, self.options_row, self.columns_box, self.input_row,
                          self.message, self.tools_row, self.code, self.saved_view],
                         layout=W.Layout(**BOX_STYLE), **kwargs)
        self.add_class("jupyter-serving-chat")

    # -- building ---------------------------------------------------------------------------------
    def _build_controls(self, system, temperature, max_tokens, stop, extra) -> None:
        self.title = W.HTML('<div style="font-size:15px;font-weight:600">Chat playground</div>')
        self.system = W.Textarea(value=system or "", placeholder="System prompt (optional)", rows=2,
                                 layout=W.Layout(width="100%"))
        small = {"style": {"description_width": "initial"}}
        self.temperature = W.Text(value="" if temperature is None else f"{temperature:g}", placeholder="default",
                                  description="Temperature", layout=W.Layout(width="170px"), **small)
        self.max_tokens = W.Text(value="" if max_tokens is None else str(max_tokens), placeholder="default",
                                 description="Max tokens", layout=W.Layout(width="160px"), **small)
        stop_text = stop if isinstance(stop, str) else ", ".join(stop or [])
        self.stop_words = W.Text(value=stop_text, placeholder="word, word", description="Stop",
                                 layout=W.Layout(width="200px"), **small)
        self.extra = W.Text(value=json.dumps(extra) if extra else "", placeholder='{"custom_inputs": {...}}',
                            description="Extra body", layout=W.Layout(flex="1 1 auto", min_width="220px"), **small)
        self.options_row = W.HBox([self.temperature, self.max_tokens, self.stop_words, self.extra],
                                  layout=W.Layout(flex_flow="row wrap", align_items="center", margin="4px 0"))
        self.input = W.Text(placeholder="Type a message — Enter sends it", layout=W.Layout(flex="1 1 auto"))
        self.input.on_msg(self._input_msg)
        self.send_button = W.Button(description="Send", icon="paper-plane", button_style="primary",
                                    layout=W.Layout(width="100px"))
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="warning", disabled=True,
                                    tooltip="Cancel the answers in flight", layout=W.Layout(width="90px"))
        self.clear_button = W.Button(description="Clear", icon="eraser", tooltip="Start a new conversation",
                                     layout=W.Layout(width="90px"))
        self.send_button.on_click(lambda _: self.ask())
        self.stop_button.on_click(lambda _: self.stop())
        self.clear_button.on_click(lambda _: self.clear())
        self.input_row = W.HBox([self.input, self.send_button, self.stop_button, self.clear_button],
                                layout=W.Layout(align_items="center"))
        self.message = W.HTML()
        self.code_button = W.ToggleButton(description="Show code", icon="code", value=False,
                                          tooltip="openai-client code for the last request")
        self.code_button.observe(self._toggle_code, names="value")
        self.save_button = W.Button(description="Save transcript", icon="table",
                                    tooltip="Store the transcript DataFrame in a notebook variable and show it")
        self.save_button.on_click(lambda _: self.save_transcript())
        self.add_button = W.Button(description="Add column", icon="columns",
                                   tooltip="Compare: another column (the same endpoint, another served entity)")
        self.add_button.on_click(lambda _: self.add_column())
        self.tools_row = W.HBox([self.code_button, self.save_button, self.add_button])
        self.code = W.HTML(layout=W.Layout(display="none"))
        self.saved_view = W.HTML()

    def _add(self, target: str) -> ChatColumn:
        column = ChatColumn(self.client, target, render_interval=self.render_interval, on_remove=self.remove_column)
        column.observe(self._streaming_changed, names="streaming")
        self.columns.append(column)
        self.columns_box.children = tuple(self.columns)
        self._update_buttons()
        return column

    def add_column(self, target: str | None = None) -> ChatColumn | None:
        """Another column: `target` ("NAME" or "NAME/entity"), by default the first column's endpoint at its
        next served entity. Its conversation starts now."""
        if len(self.columns) >= MAX_COLUMNS:
            self._say(f"At most {MAX_COLUMNS} columns side by side.", "warning")
            return None
        if target is None:
            first = self.columns[0]
            shown = {c.entity for c in self.columns if c.name == first.name}
            spare = [e for e in first.entities if e not in shown]
            target = f"{first.name}/{spare[0]}" if spare else first.name
        return self._add(target)

    def remove_column(self, column: ChatColumn) -> None:
        if len(self.columns) <= 1 or column not in self.columns:
            return
        column.stop()
        self.columns.remove(column)
        self.columns_box.children = tuple(self.columns)
        column.close()
        self._update_buttons()

    def _update_buttons(self) -> None:
        several = len(self.columns) > 1
        for column in self.columns:
            column.remove_button.layout.display = "" if several else "none"
        self.add_button.disabled = len(self.columns) >= MAX_COLUMNS

    # -- sending ----------------------------------------------------------------------------------
    def _input_msg(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "submit":  # Enter in the input
            self.ask()

    def _say(self, text: str, level: str = "info") -> None:
        self.notice = text
        self.message.value = note(text, level) if text else ""

    def options(self) -> dict:
        """What goes with every prompt: system, temperature, max_tokens, stop and the extra body (ValueError if invalid)."""
        options = parse_options(self.temperature.value, self.max_tokens.value, self.stop_words.value,
                                self.extra.value)
        if self.system.value.strip():
            options["system"] = self.system.value.strip()
        return options

    def ask(self, prompt: str | None = None) -> bool:
        """Send `prompt` (default: the input's text) to every column; False when nothing was sent."""
        text = (self.input.value if prompt is None else prompt).strip()
        if not text:
            return False
        if self.busy:
            self._say("An answer is still streaming: Stop it or wait for it.", "warning")
            return False
        try:
            options = self.options()
        except ValueError as err:
            self._say(str(err), "error")
            return False
        self._say("")
        if prompt is None:
            self.input.value = ""
        turn = self.turns + 1
        for column in self.columns:
            column.start(text, options, turn)
        self.turns = turn
        if self.code_button.value:
            self._render_code()
        return True

    def _streaming_changed(self, _change=None) -> None:
        busy = any(c.streaming for c in self.columns)
        self.stop_button.disabled = not busy
        self.send_button.disabled = busy
        if not busy and self.code_button.value:
            self._render_code()
        self.busy = busy

    def stop(self) -> None:
        """Cancel every answer in flight (their partial text stays, marked stopped)."""
        for column in self.columns:
            column.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no answer is streaming; True when none is."""
        return all(column.join(timeout) for column in list(self.columns))

    def clear(self) -> None:
        """A new conversation (answers in flight are stopped first)."""
        for column in self.columns:
            column.clear()
        self.turns = 0
        self.saved_view.value = ""
        self._say("")
        if self.code_button.value:
            self._render_code()

    def close(self) -> None:
        for column in getattr(self, "columns", ()):  # (also from __del__ of a half-built playground)
            column.stop()
            column.close()
        super().close()

    # -- code and transcript ----------------------------------------------------------------------
    def code_text(self) -> str:
        """openai-client (chat models) or `client.chat` (agents, one served entity) code for the last request."""
        try:
            options = self.options()
        except ValueError:
            options = {"system": self.system.value.strip()} if self.system.value.strip() else {}
        targets = []
        for column in self.columns:
            last = column.answers[-1] if column.answers else None
            targets.append(ChatTarget(column.name, last.entity if last else column.entity, column.task,
                                      list(last.request) if last else []))
        target = getattr(self.client, "target", None)
        local = bool(getattr(self.client, "is_local", False)) and getattr(target, "kind", None) == "local"
        return playground_code(targets, options, local=local, data_dir=getattr(target, "data_dir", None) if local
                               else None, profile=getattr(target, "profile", None),
                               has_openai=callable(getattr(self.client, "openai", None)))

    def _toggle_code(self, change) -> None:
        self.code_button.description = "Hide code" if change["new"] else "Show code"
        self.code.layout.display = None if change["new"] else "none"
        if change["new"]:
            self._render_code()

    def _render_code(self) -> None:
        head = ("The last request, without the playground" if self.turns else
                "Send a message first: the code repeats the last request")
        self.code.value = (f'<div style="font-size:12px;color:{GREY}">{esc(head)}:</div>'
                           + CODE_PRE + esc(self.code_text()) + "</pre>")

    def transcript(self):
        """The conversation as a DataFrame, one row per message: turn, role (system, user, assistant,
        tool_call, tool_result), endpoint, entity, text, tokens, ttft_ms, latency_ms, finish_reason."""
        from jupyter_serving.widgets.chat_transcript import transcript_frame

        system = self.system.value.strip()
        return transcript_frame([c.turns for c in self.columns], system)

    def save_transcript(self):
        """Store the transcript in the notebook variable `transcript_name` (when in IPython) and show it."""
        from jupyter_serving.widgets.chat_transcript import store, transcript_html

        frame = self.saved = self.transcript()
        where = store(self.transcript_name, frame)
        self.saved_view.value = transcript_html(frame, where)
        return frame
