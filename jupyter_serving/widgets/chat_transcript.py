"""The chat playground's transcript: a pandas DataFrame, one row per message, and its display."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jupyter_serving.widgets._common import GREY, esc, note
from jupyter_serving.widgets.chat_turns import Answer

COLUMNS = ["turn", "role", "endpoint", "entity", "text", "tokens", "ttft_ms", "latency_ms", "finish_reason"]


def _row(turn: int, role: str, text: str, answer: Answer | None = None, **stats: Any) -> dict:
    return {"turn": turn, "role": role, "endpoint": answer.endpoint if answer else None,
            "entity": (answer.served_entity or answer.entity) if answer else None, "text": text,
            "tokens": stats.get("tokens"), "ttft_ms": stats.get("ttft_ms"), "latency_ms": stats.get("latency_ms"),
            "finish_reason": stats.get("finish_reason")}


def _answer_rows(answer: Answer) -> list[dict]:
    rows = []
    for tool in answer.tools:
        if tool.kind == "call":
            rows.append(_row(answer.turn, "tool_call", f"{tool.name}({tool.arguments})", answer))
        else:
            rows.append(_row(answer.turn, "tool_result", tool.output, answer))
    text = answer.text if not answer.error else (answer.text + "\n" if answer.text else "") + answer.error
    rows.append(_row(answer.turn, "assistant", text, answer, tokens=answer.tokens,
                     ttft_ms=None if answer.ttft_ms is None else round(float(answer.ttft_ms), 1),
                     latency_ms=None if answer.latency_ms is None else round(float(answer.latency_ms), 1),
                     finish_reason=answer.finish_reason or ("error" if answer.error else None)))
    return rows


def transcript_frame(columns: Sequence[Sequence[tuple[str, Answer]]], system: str = ""):
    """Rows: the system prompt (turn 0), then per turn the user's prompt once and every column's answer
    (tool calls and results first). `entity` is the entity that served the answer when known."""
    import pandas as pd

    rows = [_row(0, "system", system)] if system else []
    prompts: dict[int, str] = {}
    answers: dict[int, list[Answer]] = {}
    for turns in columns:
        for prompt, answer in turns:
            prompts.setdefault(answer.turn, prompt)
            answers.setdefault(answer.turn, []).append(answer)
    for turn in sorted(prompts):
        rows.append(_row(turn, "user", prompts[turn]))
        for answer in answers[turn]:
            rows += _answer_rows(answer)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"tokens": "Int64", "ttft_ms": "float64", "latency_ms": "float64"})


def store(name: str, frame) -> str:
    """Put `frame` in the notebook's variable `name` (in IPython); says where it went."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        shell = None
    else:
        shell = get_ipython()
    if shell is None or not name:
        return "playground.saved (and playground.transcript())"
    shell.user_ns[name] = frame
    return f"the variable {name}"


def _cell(value: Any, limit: int = 160) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None, NaN
        return ""
    try:
        import pandas as pd

        if value is pd.NA:
            return ""
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    text = f"{value:.0f}" if isinstance(value, float) else str(value)
    return esc(text if len(text) <= limit else text[: limit - 1] + "…")


CELL = "padding:3px 8px;border-bottom:1px solid #eaeef2;vertical-align:top;text-align:left;"
TEXT_CELL = "min-width:220px;max-width:520px;white-space:pre-wrap"
HEAD = "padding:3px 8px;border-bottom:2px solid #d0d7de;background:#f6f8fa;text-align:left;white-space:nowrap"


def transcript_html(frame, where: str, max_rows: int = 40) -> str:
    """A note saying where the transcript went, then its first `max_rows` rows as a table (the text
    column wraps; the others stay on one line)."""
    head = note(f"Saved the transcript ({len(frame)} rows) in {where}.", "ok")
    if not len(frame):
        return head
    columns = list(frame.columns)
    ths = "".join(f'<th style="{HEAD}">{esc(c)}</th>' for c in columns)
    body = []
    for row in frame.head(max_rows).itertuples(index=False):
        tds = "".join(f'<td style="{CELL}{TEXT_CELL if c == "text" else "white-space:nowrap"}">'
                      f"{_cell(v, 400 if c == 'text' else 60)}</td>" for c, v in zip(columns, row))
        body.append(f"<tr>{tds}</tr>")
    more = (f'<div style="font-size:11px;color:{GREY}">… {len(frame) - max_rows} more rows</div>'
            if len(frame) > max_rows else "")
    table_html = (f'<table style="border-collapse:collapse;font-size:12px;line-height:1.35;margin:4px 0">'
                  f'<thead><tr>{ths}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    return f'{head}<div style="max-height:360px;overflow:auto">{table_html}{more}</div>'
