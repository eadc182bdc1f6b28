"""The backend's durable state in SQLite: endpoints (one JSON document each), tokens, build logs.

Rows are keyed by endpoint id, not name, and a deleted endpoint leaves a tombstone: a save of a
deleted id is refused, so a deploy cancelled by a DELETE can never write its endpoint back (and a
recreated endpoint of the same name never meets the old one's rows or build logs).

Writes are blocking calls: the engine runs them in a thread (`Engine.persist`), one at a time, with a
short busy timeout, and raises `StoreUnavailable` (503 TEMPORARILY_UNAVAILABLE) when one fails.
Every acknowledged change is committed before the HTTP answer goes out, so a restart loses nothing.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path

from jupyter_serving.core.rules import RuleViolation
from jupyter_serving.local.sqlite_tx import transaction

log = logging.getLogger("jupyter_serving.local")

WRITE_BUSY_TIMEOUT_S = 1.0
REQUIRED_FIELDS = ("name", "id", "creator", "state")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoint_rows (id TEXT PRIMARY KEY, name TEXT NOT NULL, doc TEXT NOT NULL,
                                          deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, user TEXT NOT NULL, is_admin INTEGER NOT NULL,
                                   comment TEXT, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS endpoint_build_logs (endpoint_id TEXT NOT NULL, entity TEXT NOT NULL,
                                                config_version INTEGER NOT NULL, text TEXT NOT NULL,
                                                PRIMARY KEY (endpoint_id, entity, config_version));
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreUnavailable(RuleViolation):
    """A write to state.db failed (locked beyond the busy timeout, disk full, read-only): nothing changed."""

    def __init__(self, exc: Exception):
        super().__init__(f"The backend could not save the change ({exc}); nothing was changed. Retry shortly.",
                         "TEMPORARILY_UNAVAILABLE")
        self.details: list = []


class Store:
    def __init__(self, path: Path):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=WRITE_BUSY_TIMEOUT_S)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._lock = threading.Lock()
        self._token_cache: dict[str, tuple[str, bool]] = {}
        self.unreadable: list[str] = []  # endpoint rows the last load skipped

    def _migrate(self) -> None:
        """Move the rows of the old name-keyed tables (`endpoints`, `build_logs`) to the id-keyed ones."""
        tables = {t for (t,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "endpoints" not in tables:
            return
        ids = {}
        for name, text in self._db.execute("SELECT name, doc FROM endpoints").fetchall():
            try:
                ids[name] = str(json.loads(text)["id"])
            except (ValueError, TypeError, KeyError):
                ids[name] = f"unreadable:{name}"
            self._db.execute("INSERT OR IGNORE INTO endpoint_rows (id, name, doc) VALUES (?, ?, ?)",
                             (ids[name], name, text))
        if "build_logs" in tables:
            for name, entity, version, text in self._db.execute("SELECT * FROM build_logs").fetchall():
                if name in ids:
                    self._db.execute("INSERT OR IGNORE INTO endpoint_build_logs VALUES (?, ?, ?, ?)",
                                     (ids[name], entity, version, text))
            self._db.execute("DROP TABLE build_logs")
        self._db.execute("DROP TABLE endpoints")

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        """Run `statements` in one transaction; StoreUnavailable if the database refuses."""
        try:
            transaction(self._db, self._lock, statements)
        except sqlite3.Error as exc:
            raise StoreUnavailable(exc) from exc

    # endpoints
    def load_endpoints(self) -> list[dict]:
        """Every live endpoint; a row that does not parse or lacks a required field is skipped and logged."""
        docs, self.unreadable = [], []
        for row_id, name, text in self._run("SELECT id, name, doc FROM endpoint_rows WHERE deleted = 0 ORDER BY name"):
            try:
                doc = json.loads(text)
                missing = [k for k in REQUIRED_FIELDS if not isinstance(doc, dict) or k not in doc]
                if missing:
                    raise ValueError(f"missing {', '.join(missing)}")
                docs.append(doc)
            except (ValueError, TypeError) as exc:
                log.error("state.db: skipped the unreadable row of endpoint %r (id %s): %s", name, row_id, exc)
                self.unreadable.append(name)
        return docs

    def save_endpoint(self, endpoint_id: str, name: str, doc_json: str) -> bool:
        """Write an endpoint's document unless the endpoint was deleted; returns whether it was written."""
        self._write([(
            "INSERT INTO endpoint_rows (id, name, doc) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, name = excluded.name WHERE deleted = 0",
            (endpoint_id, name, doc_json))])
        return bool(self._run("SELECT 1 FROM endpoint_rows WHERE id = ? AND deleted = 0", (endpoint_id,)))

    def delete_endpoint(self, endpoint_id: str, name: str) -> None:
        """Leave a tombstone: the id can never be saved again."""
        self._write([
            ("INSERT INTO endpoint_rows (id, name, doc, deleted) VALUES (?, ?, '{}', 1) "
             "ON CONFLICT(id) DO UPDATE SET doc = '{}', deleted = 1", (endpoint_id, name)),
            ("DELETE FROM endpoint_build_logs WHERE endpoint_id = ?", (endpoint_id,)),
        ])

    def is_deleted(self, endpoint_id: str) -> bool:
        return bool(self._run("SELECT 1 FROM endpoint_rows WHERE id = ? AND deleted = 1", (endpoint_id,)))

    # tokens
    def add_token(self, token: str, user: str, is_admin: bool, comment: str, created: int) -> None:
        self._write([(
            "INSERT OR REPLACE INTO tokens (token, user, is_admin, comment, created) VALUES (?, ?, ?, ?, ?)",
            (token, user, int(is_admin), comment, created))])

    def user_for_token(self, token: str) -> tuple[str, bool] | None:
        # Cached: every invocation authenticates, and tokens are never revoked while running.
        if token not in self._token_cache:
            rows = self._run("SELECT user, is_admin FROM tokens WHERE token = ?", (token,))
            if not rows:
                return None
            self._token_cache[token] = (rows[0][0], bool(rows[0][1]))
        return self._token_cache[token]

    # build logs
    def save_build_log(self, endpoint_id: str, entity: str, config_version: int, text: str) -> None:
        self._write([(
            "INSERT OR REPLACE INTO endpoint_build_logs (endpoint_id, entity, config_version, text) "
            "SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM endpoint_rows WHERE id = ? AND deleted = 1)",
            (endpoint_id, entity, config_version, text, endpoint_id))])

    def build_log(self, endpoint_id: str, entity: str, config_version: int | None) -> str | None:
        if config_version is None:
            rows = self._run(
                "SELECT text FROM endpoint_build_logs WHERE endpoint_id = ? AND entity = ? "
                "ORDER BY config_version DESC LIMIT 1", (endpoint_id, entity))
        else:
            rows = self._run(
                "SELECT text FROM endpoint_build_logs WHERE endpoint_id = ? AND entity = ? AND config_version = ?",
                (endpoint_id, entity, config_version))
        return rows[0][0] if rows else None

    # settings
    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._run("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_setting(self, key: str, value: str) -> None:
        self._write([("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))])

    def close(self) -> None:
        with self._lock:
            self._db.close()
