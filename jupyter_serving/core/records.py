"""The AI Gateway's records as DataFrames: an endpoint's inference table (payloads) and its usage
rows, and the SQL that reads them from Unity Catalog on Databricks. Pure: no I/O.

Locally the rows come from `GET .../inference-table` and `GET .../usage`; on Databricks from the tables
`{catalog}.{schema}.{prefix}_payload` and `system.serving.endpoint_usage` through the SQL Statement
Execution API (`payload_statement`, `usage_statement`, then `rows_of_statement` on the result).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_serving.core.errors import Hint, InvalidInputError
from jupyter_serving.core.tokens import chunk_text, request_text, response_text

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)\s*$", re.I)
_UNIT_MS = {"ms": 1, "s": 1000, "sec": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000,
            "w": 604_800_000}
SINCE_HINT = Hint(python="e.g. since='10m', since='2h', since='2024-05-01T12:00' (UTC), or epoch milliseconds.",
                  magic="e.g. --since 10m, --since 2h, --since 2024-05-01T12:00 (UTC), or epoch milliseconds.")
PAYLOAD_COLUMNS = ["request_time", "status_code", "execution_duration_ms", "served_entity_name", "client_request_id",
                   "databricks_request_id", "requester", "request", "response", "request_text", "response_text",
                   "logging_error_codes"]
USAGE_COLUMNS = ["request_time", "requester", "served_entity_name", "status_code", "input_token_count",
                 "output_token_count", "request_streaming", "latency_ms", "client_request_id", "databricks_request_id",
                 "usage_context"]


def parse_since(value: Any, now_ms: int) -> int | None:
    """Epoch milliseconds for `since`: None; a duration ago ("10m", "2h", "1d", "30s"); an ISO time
    (UTC when it names no zone); epoch milliseconds (an int or digits); a datetime or a timedelta (ago)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInputError(f"since={value!r} is not a time", SINCE_HINT)
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, dt.timedelta):
        return now_ms - int(value.total_seconds() * 1000)
    if isinstance(value, dt.datetime):
        return _datetime_ms(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    m = _SINCE.match(text)
    if m:
        return now_ms - int(float(m.group(1)) * _UNIT_MS[m.group(2).lower()])
    try:
        return _datetime_ms(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidInputError(f"Cannot read the time '{text}'", SINCE_HINT) from None


def _datetime_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp() * 1000)


def _json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _is_llm(body: Any) -> bool:
    return isinstance(body, Mapping) and any(k in body for k in ("messages", "prompt", "input"))


def _answer_text(body: Any) -> str:
    if isinstance(body, Mapping) and isinstance(body.get("chunks"), list):  # a stream, as the table keeps it
        return "".join(chunk_text(c) for c in body["chunks"])
    return response_text(body)


def _frame(rows: Iterable[Mapping], columns: list[str]):
    import pandas as pd

    frame = pd.DataFrame([dict(r) for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    if "request_time" in frame.columns:
        frame["request_time"] = pd.to_datetime(frame["request_time"], utc=True, errors="coerce", format="mixed")
    elif "timestamp_ms" in frame.columns:
        frame.insert(0, "request_time", pd.to_datetime(frame["timestamp_ms"], unit="ms", utc=True))
    first = [c for c in columns if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]].reset_index(drop=True)


def payload_frame(rows: Iterable[Mapping]):
    """Inference-table rows as a DataFrame: request and response parsed from their JSON text (a stream's
    response is `{"chunks": [...], "truncated": ...}`); for chat models `request_text` and
    `response_text` too. Columns first: `PAYLOAD_COLUMNS` (those present)."""
    rows = [dict(r) for r in rows]
    for row in rows:
        row["request"], row["response"] = _json(row.get("request")), _json(row.get("response"))
        if _is_llm(row["request"]):
            row["request_text"] = request_text(row["request"])
            row["response_text"] = _answer_text(row["response"])
        if "served_entity_name" not in row and row.get("served_entity_id"):
            row["served_entity_name"] = row["served_entity_id"]
    frame = _frame(rows, PAYLOAD_COLUMNS)
    return frame.drop(columns=[c for c in ("timestamp_ms", "request_date") if c in frame.columns])


def usage_frame(rows: Iterable[Mapping]):
    """Usage-tracking rows as a DataFrame (columns first: `USAGE_COLUMNS`, those present)."""
    rows = [dict(r) for r in rows]
    for row in rows:
        if "served_entity_name" not in row and row.get("served_entity_id"):
            row["served_entity_name"] = row["served_entity_id"]
        if isinstance(row.get("usage_context"), str):
            row["usage_context"] = _json(row["usage_context"])
    frame = _frame(rows, USAGE_COLUMNS)
    return frame.drop(columns=[c for c in ("timestamp_ms",) if c in frame.columns])


SUMMARY_COLUMNS = ["requester", "served_entity_name", "requests", "errors", "input_tokens", "output_tokens",
                   "total_tokens", "first", "last"]


def summarize_usage(frame):
    """Requests, errors (status >= 400) and tokens per requester and served entity, most tokens first."""
    import pandas as pd

    if frame is None or len(frame) == 0:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    data = frame.copy()
    for column in ("requester", "served_entity_name"):
        data[column] = data[column].fillna("(unknown)") if column in data.columns else "(unknown)"
    for column in ("input_token_count", "output_token_count", "status_code"):
        data[column] = pd.to_numeric(data[column], errors="coerce") if column in data.columns else 0
    data["is_error"] = data["status_code"].fillna(0) >= 400
    if "request_time" not in data.columns:
        data["request_time"] = pd.NaT
    grouped = data.groupby(["requester", "served_entity_name"], dropna=False).agg(
        requests=("status_code", "size"), errors=("is_error", "sum"), input_tokens=("input_token_count", "sum"),
        output_tokens=("output_token_count", "sum"), first=("request_time", "min"), last=("request_time", "max"))
    grouped["total_tokens"] = grouped["input_tokens"] + grouped["output_tokens"]
    out = grouped.reset_index()[SUMMARY_COLUMNS]
    for column in ("requests", "errors", "input_tokens", "output_tokens", "total_tokens"):
        out[column] = out[column].astype("int64")
    return out.sort_values(["total_tokens", "requests"], ascending=False).reset_index(drop=True)


def newest(rows: list, limit: int | None) -> list:
    """The last `limit` rows of rows given oldest first (all of them for None)."""
    return rows if limit is None or len(rows) <= limit else rows[-limit:]


# --------------------------------------------------------------------------------------------------
# Unity Catalog: the SQL that reads the records on Databricks

USAGE_TABLE = "system.serving.endpoint_usage"
ENTITIES_TABLE = "system.serving.served_entities"


def quote_name(*parts: str) -> str:
    """A three-part table name with each part backquoted (`a`.`b`.`c`)."""
    return ".".join("`" + str(p).replace("`", "``") + "`" for p in parts)


def payload_table(inference_table_config: Mapping | None, endpoint: str) -> str | None:
    """`catalog`.`schema`.`prefix_payload` of an endpoint's AI Gateway inference table config (the prefix
    defaults to the endpoint's name, as on Databricks); None when the table is not enabled."""
    cfg = inference_table_config or {}
    if not cfg.get("enabled") or not (cfg.get("catalog_name") and cfg.get("schema_name")):
        return None
    prefix = cfg.get("table_name_prefix") or endpoint
    return quote_name(cfg["catalog_name"], cfg["schema_name"], f"{prefix}_payload")


def _since_clause(column: str, since_ms: int | None, params: list) -> str:
    if since_ms is None:
        return ""
    params.append({"name": "since", "value": dt.datetime.fromtimestamp(since_ms / 1000, dt.timezone.utc).isoformat(),
                   "type": "TIMESTAMP"})
    return f" AND {column} >= :since"


def payload_statement(table: str, since_ms: int | None, limit: int) -> tuple[str, list[dict]]:
    """(SQL, parameters) for the newest `limit` rows of an inference table, from `since_ms` on."""
    params: list[dict] = []
    where = _since_clause("request_time", since_ms, params)
    return (f"SELECT * FROM {table} WHERE TRUE{where} ORDER BY request_time DESC LIMIT {int(limit)}", params)


def usage_statement(endpoint: str, since_ms: int | None, limit: int) -> tuple[str, list[dict]]:
    """(SQL, parameters) for the newest `limit` usage rows of endpoint `endpoint`, with each row's served
    entity name (from `system.serving.served_entities`)."""
    params: list[dict] = [{"name": "endpoint", "value": endpoint, "type": "STRING"}]
    where = _since_clause("u.request_time", since_ms, params)
    sql = (f"SELECT u.*, e.served_entity_name FROM {USAGE_TABLE} u JOIN (SELECT DISTINCT served_entity_id, "
           f"served_entity_name FROM {ENTITIES_TABLE} WHERE endpoint_name = :endpoint) e "
           f"ON u.served_entity_id = e.served_entity_id WHERE TRUE{where} ORDER BY u.request_time DESC "
           f"LIMIT {int(limit)}")
    return sql, params


_INTS = {"BYTE", "SHORT", "INT", "LONG", "BIGINT", "INTEGER", "SMALLINT", "TINYINT"}
_FLOATS = {"FLOAT", "DOUBLE", "DECIMAL"}


def _cell(value: Any, type_name: str) -> Any:
    if value is None:
        return None
    try:
        if type_name in _INTS:
            return int(value)
        if type_name in _FLOATS:
            return float(value)
    except (TypeError, ValueError):
        return value
    if type_name == "BOOLEAN":
        return str(value).lower() == "true"
    if type_name in ("ARRAY", "MAP", "STRUCT"):
        return _json(value)
    return value


def rows_of_statement(columns: list[tuple[str, str]], data: Iterable[list]) -> list[dict]:
    """Rows (dicts) of a statement's JSON_ARRAY result: `columns` are (name, type_name) pairs; values
    come as strings and are converted by type (numbers, booleans, arrays/maps/structs from JSON)."""
    types = [(name, str(kind or "STRING").upper()) for name, kind in columns]
    return [{name: _cell(v, kind) for (name, kind), v in zip(types, row)} for row in data]


__all__ = ["PAYLOAD_COLUMNS", "SUMMARY_COLUMNS", "USAGE_COLUMNS", "newest", "parse_since", "payload_frame",
           "payload_statement", "payload_table", "quote_name", "rows_of_statement", "summarize_usage", "usage_frame",
           "usage_statement"]
