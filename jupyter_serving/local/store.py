"""The backend's durable state in SQLite: endpoints (one JSON document each), tokens, build logs.

Every acknowledged change is committed before the HTTP answer goes out, so a restart loses nothing.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, user TEXT NOT NULL, is_admin INTEGER NOT NULL,
                                   comment TEXT, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS build_logs (endpoint TEXT NOT NULL, entity TEXT NOT NULL, config_version INTEGER NOT NULL,
                                       text TEXT NOT NULL, PRIMARY KEY (endpoint, entity, config_version));
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._token_cache: dict[str, tuple[str, bool]] = {}

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # endpoints
    def load_endpoints(self) -> list[dict]:
        return [json.loads(doc) for (doc,) in self._run("SELECT doc FROM endpoints ORDER BY name")]

    def save_endpoint(self, endpoint: dict) -> None:
        self._run(
            "INSERT INTO endpoints (name, doc) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET doc = excluded.doc",
            (endpoint["name"], json.dumps(endpoint)),
        )

    def delete_endpoint(self, name: str) -> None:
        self._run("DELETE FROM endpoints WHERE name = ?", (name,))
        self._run("DELETE FROM build_logs WHERE endpoint = ?", (name,))

    # tokens
    def add_token(self, token: str, user: str, is_admin: bool, comment: str, created: int) -> None:
        self._run(
            "INSERT OR REPLACE INTO tokens (token, user, is_admin, comment, created) VALUES (?, ?, ?, ?, ?)",
            (token, user, int(is_admin), comment, created),
        )

    def user_for_token(self, token: str) -> tuple[str, bool] | None:
        # Cached: every invocation authenticates, and tokens are never revoked while running.
        if token not in self._token_cache:
            rows = self._run("SELECT user, is_admin FROM tokens WHERE token = ?", (token,))
            if not rows:
                return None
            self._token_cache[token] = (rows[0][0], bool(rows[0][1]))
        return self._token_cache[token]

    # build logs
    def save_build_log(self, endpoint: str, entity: str, config_version: int, text: str) -> None:
        self._run(
            "INSERT OR REPLACE INTO build_logs (endpoint, entity, config_version, text) VALUES (?, ?, ?, ?)",
            (endpoint, entity, config_version, text),
        )

    def build_log(self, endpoint: str, entity: str, config_version: int | None) -> str | None:
        if config_version is None:
            rows = self._run(
                "SELECT text FROM build_logs WHERE endpoint = ? AND entity = ? ORDER BY config_version DESC LIMIT 1",
                (endpoint, entity),
            )
        else:
            rows = self._run(
                "SELECT text FROM build_logs WHERE endpoint = ? AND entity = ? AND config_version = ?",
                (endpoint, entity, config_version),
            )
        return rows[0][0] if rows else None

    # settings
    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._run("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_setting(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
