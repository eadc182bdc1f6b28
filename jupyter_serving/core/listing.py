"""`EndpointsFrame`: what `%serve list` shows. A DataFrame (filter it, read its columns) whose
display drops pandas' 0-based index, says times the human way ("3 min ago") and has an explicit
empty state. Pure: no I/O.
"""
from __future__ import annotations

import datetime as _dt
import html
from typing import Any

import pandas as pd

EMPTY = "No serving endpoints yet — create one with `%serve create NAME --model M --version V`."


def ago(when: Any, now: _dt.datetime | None = None) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '5 days ago' ('' for no time)."""
    if when is None or when is pd.NaT or (isinstance(when, float) and when != when):
        return ""
    try:
        ts = pd.Timestamp(when)
    except (TypeError, ValueError):
        return str(when)
    if ts is pd.NaT:
        return ""
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    seconds = max(0.0, (pd.Timestamp(now) - ts).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


class EndpointsFrame(pd.DataFrame):
    """The endpoints, one row each; displayed without the index and with relative times."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def view(self) -> pd.DataFrame:
        """The frame as displayed: times as 'N min ago', indexed by the endpoint name."""
        shown = pd.DataFrame(self).copy()
        if "updated" in shown.columns:
            shown["updated"] = [ago(v) for v in shown["updated"]]
        if "name" in shown.columns:
            shown = shown.set_index("name")
            shown.index.name = None
        return shown

    def __repr__(self) -> str:
        if len(self) == 0:
            return EMPTY
        return self.view().to_string()

    def _repr_html_(self):  # type: ignore[override]
        if len(self) == 0:
            return f"<div>{html.escape(EMPTY)}</div>"
        return self.view().to_html(escape=True, border=0)
