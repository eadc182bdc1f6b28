"""Usage tracking and inference tables, kept locally in SQLite (`<home>/ai_gateway.db`, mode 0600).

Databricks writes usage to the system table `system.serving.endpoint_usage` and payloads to the Unity
Catalog table `{catalog}.{schema}.{table_name_prefix}_payload`. Here both are SQLite tables with the
same columns (names and meaning as Databricks documents them), plus a few local ones: `endpoint_id`
(payload rows are read per endpoint), `endpoint_name`, `served_entity_name`, `latency_ms`,
`timestamp_ms`. Each payload table is named after its Unity Catalog name (`payload:catalog.schema.
prefix_payload`, quoted; the parts are identifiers, validated when configured).

Payloads are bounded as on Databricks: a request or response over MAX_LOGGED_BYTES (1 MiB) is logged
as null, with MAX_REQUEST_SIZE_EXCEEDED / MAX_RESPONSE_SIZE_EXCEEDED in `logging_error_codes`.

Writes never block the event loop and none is lost: `put_*` only queues a record (O(1)); one writer
thread takes what is queued, turns it into rows (decoding, counting characters and, when the model
reported none, estimating tokens: all off the loop) and inserts them in one transaction per batch,
retrying while SQLite refuses. `flush()` resolves once everything queued before it is committed, so a
read right after a query sees it; `close()` writes what is left and stops the thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from jupyter_serving.core.tokens import count_tokens, request_text, response_text

log = logging.getLogger("jupyter_serving.local")

MAX_LOGGED_BYTES = 1024 * 1024
MAX_BATCH = 2000
FLUSH_TIMEOUT_S = 10.0
_STOP = object()

USAGE_COLUMNS = ("databricks_request_id", "client_request_id", "requester", "status_code", "request_time",
                 "input_token_count", "output_token_count", "input_character_count", "output_character_count",
                 "usage_context", "request_streaming", "served_entity_id", "endpoint_id", "endpoint_name",
                 "served_entity_name", "latency_ms", "timestamp_ms")
PAYLOAD_COLUMNS = ("databricks_request_id", "client_request_id", "request_date", "request_time", "status_code",
                   "sampling_fraction", "execution_duration_ms", "request", "response", "logging_error_codes",
                   "served_entity_id", "requester", "served_entity_name", "endpoint_id", "timestamp_ms")
_JSON_COLUMNS = {"usage_context", "logging_error_codes"}
_BOOL_COLUMNS = {"request_streaming"}
_USAGE_SCHEMA = f"""CREATE TABLE IF NOT EXISTS endpoint_usage (
    {', '.join(USAGE_COLUMNS)});
CREATE INDEX IF NOT EXISTS endpoint_usage_by_time ON endpoint_usage (endpoint_id, timestamp_ms)"""


def payload_table(inference_table_config: dict) -> str:
    """The Unity Catalog name of an endpoint's payload table: `catalog.schema.prefix_payload`."""
    cfg = inference_table_config
    return f"{cfg['catalog_name']}.{cfg['schema_name']}.{cfg['table_name_prefix']}_payload"


def _sql_name(table: str) -> str:
    return '"payload:' + table.replace('"', '""') + '"'


def served_entity_id(endpoint_id: str, entity: str) -> str:
    """A stable hex id for a served entity (Databricks' `served_entity_id` is one too)."""
    return hashlib.sha256(f"{endpoint_id}/{entity}".encode()).hexdigest()[:32]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parsed(raw: bytes | None):
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None


def _bounded(raw: bytes | None, code: str, errors: list[str]) -> str | None:
    if raw is None:
        return None
    if len(raw) > MAX_LOGGED_BYTES:
        errors.append(code)
        return None
    return raw.decode("utf-8", errors="replace")


def usage_row(rec: dict) -> tuple:
    """A usage record (as `put_usage` queued it) as a row of `endpoint_usage` (in the writer thread)."""
    text_in, text_out = request_text(rec.pop("request", None)), response_text(_parsed(rec.pop("response", None)))
    if rec.get("input_token_count") is None:
        rec["input_token_count"] = count_tokens(text_in)
    if rec.get("output_token_count") is None:
        rec["output_token_count"] = count_tokens(text_out)
    rec["input_character_count"], rec["output_character_count"] = len(text_in), len(text_out)
    rec["request_time"] = _iso(rec["timestamp_ms"])
    rec["usage_context"] = json.dumps(rec.get("usage_context")) if rec.get("usage_context") is not None else None
    rec["request_streaming"] = int(bool(rec.get("request_streaming")))
    return tuple(rec.get(c) for c in USAGE_COLUMNS)


def payload_row(rec: dict) -> tuple:
    """A payload record as a row of its payload table (in the writer thread)."""
    errors: list[str] = []
    rec["request"] = _bounded(rec.get("request"), "MAX_REQUEST_SIZE_EXCEEDED", errors)
    rec["response"] = _bounded(rec.get("response"), "MAX_RESPONSE_SIZE_EXCEEDED", errors)
    rec["logging_error_codes"] = json.dumps(errors)
    rec["request_time"] = _iso(rec["timestamp_ms"])
    rec["request_date"] = rec["request_time"][:10]
    rec["sampling_fraction"] = 1.0
    return tuple(rec.get(c) for c in PAYLOAD_COLUMNS)


def _present(columns: tuple, row: tuple) -> dict:
    out = {}
    for column, value in zip(columns, row):
        if column in _JSON_COLUMNS and value is not None:
            value = json.loads(value)
        elif column in _BOOL_COLUMNS:
            value = bool(value)
        out[column] = value
    return out


class Records:
    """The queue, the writer thread and the reads of `ai_gateway.db`."""

    def __init__(self, db_path: Path):
        self.path = Path(db_path)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._tables: set[str] = set()

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        db = self._connect()
        db.executescript(_USAGE_SCHEMA)
        db.close()
        self._reader = self._connect()
        self._thread = threading.Thread(target=self._run, name="ai-gateway-records", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    # writes (from the event loop: O(1)) --------------------------------------------------------
    def put_usage(self, record: dict) -> None:
        self._queue.put(("usage", None, record))

    def put_payload(self, table: str, record: dict) -> None:
        self._queue.put(("payload", table, record))

    async def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until everything queued so far is written (at most `timeout` s: then read what is)."""
        if self._thread is None:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put(("flush", loop, done))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), timeout)

    # the writer thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        db = self._connect()
        stopping = False
        try:
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = any(item is _STOP for item in batch)
                self._write(db, [item for item in batch if item is not _STOP])
        finally:
            db.close()

    def _write(self, db: sqlite3.Connection, batch: list) -> None:
        usage, payloads, flushes = [], {}, []
        for kind, where, record in batch:
            try:
                if kind == "usage":
                    usage.append(usage_row(record))
                elif kind == "payload":
                    payloads.setdefault(where, []).append(payload_row(record))
                else:
                    flushes.append((where, record))
            except Exception:  # one malformed record must not stop the writer
                log.exception("ai gateway: could not make a row of a %s record", kind)
        delay = 0.05
        while usage or payloads:
            try:
                self._insert(db, usage, payloads)
                break
            except sqlite3.Error as exc:
                log.warning("ai gateway: could not write %d rows (%s); retrying", len(usage) + len(payloads), exc)
                time.sleep(delay)  # the writer thread waits for SQLite, never the event loop
                delay = min(delay * 2, 2.0)
        for loop, done in flushes:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(lambda f=done: f.done() or f.set_result(None))

    def _insert(self, db: sqlite3.Connection, usage: list, payloads: dict) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            if usage:
                db.executemany(f"INSERT INTO endpoint_usage VALUES ({', '.join('?' * len(USAGE_COLUMNS))})", usage)
            for table, rows in payloads.items():
                if table not in self._tables:
                    db.execute(f"CREATE TABLE IF NOT EXISTS {_sql_name(table)} ({', '.join(PAYLOAD_COLUMNS)})")
                db.executemany(f"INSERT INTO {_sql_name(table)} VALUES ({', '.join('?' * len(PAYLOAD_COLUMNS))})",
                               rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._tables.update(payloads)

    # reads ---------------------------------------------------------------------------------------
    def _select(self, table_sql: str, columns: tuple, endpoint_id: str, since_ms: int | None, limit: int) -> list:
        sql = (f"SELECT {', '.join(columns)} FROM {table_sql} WHERE endpoint_id = ? AND timestamp_ms >= ? "
               f"ORDER BY timestamp_ms, rowid LIMIT ?")
        with self._read_lock:
            if self._reader is None:
                return []
            try:
                rows = self._reader.execute(sql, (endpoint_id, since_ms or 0, limit)).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise
        return [_present(columns, row) for row in rows]

    async def usage(self, endpoint_id: str, since_ms: int | None, limit: int) -> list[dict]:
        await self.flush()
        return await asyncio.to_thread(self._select, "endpoint_usage", USAGE_COLUMNS, endpoint_id, since_ms, limit)

    async def payloads(self, table: str, endpoint_id: str, since_ms: int | None, limit: int) -> list[dict]:
        await self.flush()
        columns = tuple(c for c in PAYLOAD_COLUMNS if c != "endpoint_id")
        return await asyncio.to_thread(self._select, _sql_name(table), columns, endpoint_id, since_ms, limit)


__all__ = ["MAX_LOGGED_BYTES", "Records", "payload_table", "served_entity_id"]
