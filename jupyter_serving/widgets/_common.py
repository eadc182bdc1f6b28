"""Shared pieces of the widgets: the client, background work, and small HTML renderers."""
from __future__ import annotations

import html
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import ipywidgets as W

esc = html.escape

GREEN, AMBER, RED, GREY, BLUE = "#1a7f37", "#9a6700", "#cf222e", "#57606a", "#0969da"
# Entity colours in traffic bars (colour-blind friendly, Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#999999", "#882255")

BOX_STYLE = {"border": "1px solid #d0d7de", "padding": "8px 12px", "margin": "4px 0"}


def resolve_client(client: Any = None):
    """The given client, else the default one (connected on first use)."""
    if client is not None:
        return client
    from jupyter_serving import api

    return api.get_client()


def message_of(err: BaseException) -> str:
    """One line for an error: a ServingError's own message, else type and text."""
    from jupyter_serving.core.errors import ServingError

    if isinstance(err, ServingError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip(": ")


class Background:
    """Runs callables on one worker thread, in order, and counts what is in flight in `owner.pending`
    (an Int trait) so that tests and the UI can tell when the widget is idle. Exceptions are handed
    to `on_error` (never lost, never raised into the kernel)."""

    def __init__(self, owner: Any, name: str, on_error: Callable[[BaseException], None]):
        self._owner = owner
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._on_error = on_error
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        with self._lock:
            self._owner.pending += 1

        def run():
            try:
                return fn(*args)
            except Exception as err:  # noqa: BLE001 - reported in the widget
                try:
                    self._on_error(err)
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
                return None
            finally:
                with self._lock:
                    self._owner.pending -= 1

        return self._pool.submit(run)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def label(text: str, width: str = "110px", bold: bool = False) -> W.HTML:
    weight = "font-weight:600;" if bold else ""
    return W.HTML(f'<span style="{weight}color:#24292f">{esc(text)}</span>',
                  layout=W.Layout(width=width, min_width=width))


def field_row(caption: str, *controls: W.Widget, width: str = "110px") -> W.HBox:
    return W.HBox([label(caption, width), *controls], layout=W.Layout(align_items="center", margin="2px 0"))


def badge(text: str, color: str) -> str:
    return (f'<span style="display:inline-block;padding:1px 8px;border-radius:10px;background:{color};'
            f'color:white;font-weight:600;font-size:12px">{esc(text)}</span>')


def note(text: str, level: str = "info") -> str:
    """A one-line callout: info (grey-blue), warning (amber), error (red), ok (green)."""
    colors = {"info": ("#ddf4ff", "#0969da", "ℹ"), "warning": ("#fff8c5", "#9a6700", "⚠"),
              "error": ("#ffebe9", "#cf222e", "✖"), "ok": ("#dafbe1", "#1a7f37", "✔")}
    bg, fg, icon = colors.get(level, colors["info"])
    return (f'<div style="background:{bg};color:{fg};border-left:3px solid {fg};padding:3px 8px;'
            f'margin:2px 0;font-size:13px;line-height:1.4">{icon} {esc(text)}</div>')


def format_size(size: float | None) -> str:
    """Bytes in B/KB/MB/GB/TB with 1–3 significant digits: 40_000 -> '40 KB', 3.4e9 -> '3.4 GB'."""
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 999.5:
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"


def format_gb(gb: float | None) -> str:
    """GPU memory in GB with 1–3 significant digits; '< 0.1 GB' for less (never '0.0 GB')."""
    if gb is None:
        return "unknown"
    return "< 0.1 GB" if gb < 0.1 else f"{gb:.3g} GB"


def traffic_bar(split: dict[str, int], colors: dict[str, str], height: int = 18, legend: bool = True) -> str:
    """A horizontal stacked bar: one coloured segment per entity, labelled inside when wide enough;
    with `legend`, a line under it names every entity with its share (narrow segments included)."""
    segs = []
    for name, pct in split.items():
        if pct <= 0:
            continue
        text = f"{esc(name)} {pct}%" if pct >= 25 else ""
        segs.append(f'<div title="{esc(name)}: {pct}%" style="width:{pct}%;background:{colors.get(name, GREY)};'
                    f'color:white;font-size:11px;line-height:{height}px;text-align:center;overflow:hidden;'
                    f'white-space:nowrap">{text}</div>')
    if not segs:
        segs.append(f'<div style="width:100%;background:#eaeef2;line-height:{height}px;font-size:11px;'
                    f'text-align:center;color:{GREY}">no traffic</div>')
    bar = (f'<div style="display:flex;width:100%;min-width:260px;height:{height}px;border-radius:3px;'
           f'overflow:hidden;border:1px solid #d0d7de">{"".join(segs)}</div>')
    if not legend or not split:
        return bar
    keys = "".join(f'<span class="jupyter-serving-legend" style="margin-right:10px;white-space:nowrap">'
                   f'<span style="display:inline-block;width:9px;height:9px;border-radius:2px;'
                   f'background:{colors.get(name, GREY)};margin-right:4px"></span>{esc(name)} {pct}%</span>'
                   for name, pct in split.items())
    return f'<div>{bar}<div style="font-size:11px;color:{GREY};margin-top:2px">{keys}</div></div>'


def entity_colors(names: list[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


TABLE_CSS = ("border-collapse:collapse;font-size:13px;margin:4px 0;")
TH = 'style="text-align:left;padding:3px 10px;border-bottom:2px solid #d0d7de;background:#f6f8fa"'
TD = 'style="padding:3px 10px;border-bottom:1px solid #eaeef2;vertical-align:top"'


def table(headers: list[str], rows: list[list[str]], row_styles: list[str] | None = None) -> str:
    """An HTML table; cells are pre-escaped HTML."""
    head = "".join(f"<th {TH}>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        style = f' style="{row_styles[i]}"' if row_styles and row_styles[i] else ""
        body.append(f"<tr{style}>" + "".join(f"<td {TD}>{c}</td>" for c in row) + "</tr>")
    return f'<table style="{TABLE_CSS}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
