"""`ChatColumn`: one endpoint (or one served entity of it) in the chat playground.

A column keeps its own conversation (the user's prompts are shared by the playground, the answers
are its own), streams each answer in a daemon thread (`client.chat(..., stream=True)`: the kernel
stays free), and redraws the growing answer at most every `render_interval` seconds (the last
pieces are always drawn). "Stop" closes the stream: the HTTP stream ends, so the endpoint's
concurrency slot is freed; the partial answer stays, marked stopped. A failure (endpoint gone, a 4xx)
is one line in the column. An entity picker lists the endpoint's served entities (read in the
background): the traffic split, or one entity.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as W
from traitlets import Bool, Unicode

from jupyter_serving.widgets._common import badge, esc, message_of, note
from jupyter_serving.widgets.chat_turns import (
    DONE,
    FAILED,
    STOPPED,
    STREAMING,
    Answer,
    absorb,
    answer_html,
    finish,
    user_html,
)

TASK_LABELS = {"llm/v1/chat": "chat", "agent/v1/chat": "chat model", "agent/v1/responses": "responses agent",
               "agent/v2/chat": "chat agent", "llm/v1/completions": "completions"}
SPLIT = "(traffic split)"


def split_target(target: str) -> tuple[str, str | None]:
    """`"NAME/entity"` -> ("NAME", "entity"); `"NAME"` -> ("NAME", None)."""
    name, _, entity = str(target).strip().partition("/")
    return name.strip(), (entity.strip() or None)


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:  # noqa: BLE001 - a generator still running in its thread; the thread closes it
        pass


def _summary_of(stream: Any) -> Any:
    for attr in ("answer", "summary", "result"):
        value = getattr(stream, attr, None)
        if value is not None and not callable(value):
            return value
    return None


def _is_summary(delta: Any) -> bool:
    """The client's final answer summary, when it is yielded as the stream's last item."""
    return (not isinstance(delta, (str, dict)) and hasattr(delta, "ttft_ms")
            and (hasattr(delta, "total_ms") or hasattr(delta, "latency_ms")))


class ChatColumn(W.VBox):
    """One target's conversation. Traits: `streaming`, `text` (the latest answer so far), `state`
    (streaming/done/stopped/failed), `error` (one line), `task` (the endpoint's task, once read)."""

    streaming = Bool(False)
    text = Unicode("")
    state = Unicode("")
    error = Unicode("")
    task = Unicode("")
    loaded = Bool(False, help="the endpoint was read (entities and task known, or its error shown)")

    def __init__(self, client: Any, target: str, *, render_interval: float = 0.05, on_remove: Any = None,
                 **kwargs):
        self.client = client
        self.name, self.entity = split_target(target)
        self.render_interval = float(render_interval)
        self.turns: list[tuple[str, Answer]] = []
        self.entities: list[str] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._last_render = 0.0
        self._timer: threading.Timer | None = None
        self._filling = False
        self._build(on_remove)
        super().__init__([self.header, self.notice, self.conversation], layout=W.Layout(
            flex="1 1 0", min_width="260px", border="1px solid #d0d7de", padding="6px 8px", margin="0 4px 0 0"),
            **kwargs)
        self.add_class("jupyter-serving-chat-column")
        threading.Thread(target=self._load, daemon=True, name=f"serving-chat-get-{self.name}").start()

    def _build(self, on_remove: Any) -> None:
        self.title = W.HTML(self._title_html(), layout=W.Layout(flex="1 1 auto"))
        self.picker = W.Dropdown(options=[(SPLIT, "")] + ([(self.entity, self.entity)] if self.entity else []),
                                 value=self.entity or "", description="", tooltip="Served entity",
                                 layout=W.Layout(width="170px", display="" if self.entity else "none"))
        self.picker.observe(self._picked, names="value")
        self.remove_button = W.Button(icon="times", tooltip="Remove this column", layout=W.Layout(
            width="32px", display="none" if on_remove is None else ""))
        if on_remove is not None:
            self.remove_button.on_click(lambda _: on_remove(self))
        self.header = W.HBox([self.title, self.picker, self.remove_button],
                             layout=W.Layout(align_items="center", justify_content="space-between"))
        self.notice = W.HTML()
        self.conversation = W.VBox()  # no scroll box of its own: new tokens must stay in sight

    @property
    def target(self) -> str:
        return f"{self.name}/{self.entity}" if self.entity else self.name

    @property
    def answers(self) -> list[Answer]:
        return [answer for _, answer in self.turns]

    # -- the endpoint -----------------------------------------------------------------------------
    def _title_html(self) -> str:
        task = TASK_LABELS.get(self.task, self.task)
        tag = f" {badge(task, '#57606a')}" if task else ""
        return f'<b style="font-size:14px">{esc(self.name)}</b>{tag}'

    def _load(self) -> None:
        try:
            status = self.client.get(self.name)
        except Exception as err:  # noqa: BLE001 - one line in the column; sending will say it again
            self.notice.value = note(message_of(err), "error")
            self.error = message_of(err)
        else:
            self.task = str(status.raw.get("task") or "")
            self.entities = list(status.entity_names)
            self.title.value = self._title_html()
            self._fill_picker(status.traffic)
        finally:
            self.loaded = True

    def _fill_picker(self, traffic: dict[str, int]) -> None:
        if self.entity and self.entity not in self.entities:
            self.notice.value = note(f"Endpoint '{self.name}' has no served entity '{self.entity}' (served "
                                     f"entities: {', '.join(self.entities) or 'none'})", "error")
        first = SPLIT if len(self.entities) != 1 else f"{self.entities[0]} (its only entity)"
        options = [(first, "")] + [(f"{e} · {traffic[e]}%" if e in traffic else e, e) for e in self.entities]
        if self.entity and self.entity not in self.entities:
            options.append((self.entity, self.entity))
        self._filling = True  # new options reset the value: not the user's pick
        try:
            self.picker.options = options
            self.picker.value = self.entity or ""
        finally:
            self._filling = False
        self.picker.layout.display = "" if len(self.entities) > 1 or self.entity else "none"

    def _picked(self, change) -> None:
        if not self._filling:
            self.entity = change["new"] or None

    # -- a conversation turn ----------------------------------------------------------------------
    def messages(self, prompt: str | None = None) -> list[dict]:
        """The conversation so far as chat messages (failed turns left out), then `prompt`."""
        out: list[dict] = []
        for user, answer in self.turns:
            if answer.state == FAILED or (answer.state == STREAMING and not answer.text):
                continue
            out.append({"role": "user", "content": user})
            if answer.text:
                out.append({"role": "assistant", "content": answer.text})
        if prompt is not None:
            out.append({"role": "user", "content": prompt})
        return out

    def start(self, prompt: str, options: dict, turn: int = 0) -> bool:
        """Start streaming the answer to `prompt` in a thread; False while an answer is streaming."""
        with self._lock:
            if self.streaming:
                return False
            messages = self.messages(prompt)
            answer = Answer(self.name, self.entity, request=messages, turn=turn or len(self.turns) + 1)
            self.turns.append((prompt, answer))
            widget = W.HTML(answer_html(answer))
            self.conversation.children = (*self.conversation.children, W.HTML(user_html(prompt)), widget)
            self._stop = threading.Event()
            self._stream = None
            self.text, self.error, self.state, self.streaming = "", "", STREAMING, True
            self._thread = threading.Thread(target=self._run, args=(answer, messages, dict(options), self._stop,
                                                                    widget),
                                            daemon=True, name=f"serving-chat-{self.target}")
            self._thread.start()
            return True

    def _run(self, answer: Answer, messages: list[dict], options: dict, stop: threading.Event,
             widget: W.HTML) -> None:
        stream, summary = None, None
        try:
            if self.task:  # known from the column's GET: no second one per turn
                options.setdefault("task", self.task)
            stream = self.client.chat(self.name, messages, stream=True, entity=answer.entity, **options)
            self._stream = stream
            for delta in ([] if stop.is_set() else stream):
                if stop.is_set():
                    break
                if _is_summary(delta):
                    summary = delta
                elif absorb(answer, delta):
                    self.text = answer.text
                    self._changed(answer, widget)
            finish(answer, summary or _summary_of(stream), state=STOPPED if stop.is_set() else DONE)
        except Exception as err:  # noqa: BLE001 - one line in the column, never a traceback
            if stop.is_set():
                finish(answer, None, state=STOPPED)
            else:
                finish(answer, None, state=FAILED, error=message_of(err))
        finally:
            _close(stream)
            self._stream = None
            self._draw(answer, widget)
            self.text, self.error, self.state = answer.text, answer.error, answer.state
            self.streaming = False  # last: whoever waits on it sees the final answer

    def _changed(self, answer: Answer, widget: W.HTML) -> None:
        """Redraw now, or (pieces arriving faster than render_interval) once the interval is over."""
        with self._lock:
            if time.monotonic() - self._last_render >= self.render_interval:
                self._draw(answer, widget)
            elif self._timer is None:
                self._timer = threading.Timer(self.render_interval, self._draw, args=(answer, widget))
                self._timer.daemon = True
                self._timer.start()

    def _draw(self, answer: Answer, widget: W.HTML) -> None:
        with self._lock:
            self._timer = None
            self._last_render = time.monotonic()
            widget.value = answer_html(answer)

    def stop(self) -> None:
        """Cancel the answer in flight: the stream is closed, the partial answer kept (marked stopped)."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            _close(stream)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the answer in flight; True when none is streaming."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.streaming

    def clear(self) -> None:
        """Forget the conversation (an answer in flight is stopped first)."""
        self.stop()
        self.join(10)
        with self._lock:
            self.turns = []
            self.conversation.children = ()
            self.text, self.state, self.error = "", "", ""

    def last_html(self) -> str:
        """The latest answer's HTML as drawn ('' before the first)."""
        children = self.conversation.children
        return children[-1].value if children else ""

