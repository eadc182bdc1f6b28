"""The local secret store behind the Secrets API: scopes, their secrets, and sealed API keys (SQLite).

`<data dir>/secrets.db` is a file of its own, created with mode 0600 (so are SQLite's journal files,
which take the database's mode), apart from state.db: no endpoint document ever holds a key.

- Scopes and secrets are what `POST /api/2.0/secrets/...` manages (`local.http.secrets`). A value is
  written and deleted but never returned; the only reader is an external model's bring-up, which
  resolves its `{{secrets/scope/key}}` reference (`value`).
- Sealed keys: the `*_plaintext` API keys of external models, moved out of the config when it is
  submitted (`local.external.seal_plaintext_keys`). They live in a table of their own, named by
  endpoint id, that no API route can list, read or reference.

Who may do what (kept simple): only the local admin writes (creates and deletes scopes, puts and
deletes secrets). Reading, which is listing a scope's keys or referencing a secret in an endpoint's
config, is for the admin, and for everyone when the scope was created with
`initial_manage_principal: "users"`. Anyone may list the scopes.

Every method blocks (SQLite): the HTTP layer and the engine call them in a thread. Values are never
logged, and never part of an error message.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from jupyter_serving.core.rules import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    RuleViolation,
)
from jupyter_serving.local.sqlite_tx import transaction

BUSY_TIMEOUT_S = 1.0
MAX_SCOPES = 1000
MAX_SECRETS_PER_SCOPE = 1000  # as Databricks
MAX_VALUE_BYTES = 128 * 1024  # as Databricks
EVERYONE = "users"
RESOURCE_LIMIT_EXCEEDED = "RESOURCE_LIMIT_EXCEEDED"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes (name TEXT PRIMARY KEY, manage_principal TEXT, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (scope TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                                    is_bytes INTEGER NOT NULL, updated INTEGER NOT NULL,
                                    PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS sealed (name TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, value BLOB NOT NULL);
"""


def no_scope(scope: str) -> RuleViolation:
    return RuleViolation(f"Secret scope '{scope}' does not exist.", RESOURCE_DOES_NOT_EXIST)


def _create_private(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists (never readable by others, not even briefly)."""
    old = os.umask(0o077)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)


class StoreError(RuleViolation):
    """secrets.db refused a write (locked, full, read-only): nothing changed."""

    def __init__(self, exc: Exception):
        super().__init__(f"The backend could not save the secret store's change ({type(exc).__name__}); nothing "
                         "was changed. Retry shortly.", "TEMPORARILY_UNAVAILABLE")


class SecretStore:
    def __init__(self, path: Path):
        _create_private(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # a deleted value is overwritten, not left in free pages
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _write(self, statements: list[tuple[str, tuple]], check=None) -> None:
        """Run `statements` in one transaction after `check()` (which may raise) under the same lock."""
        try:
            transaction(self._db, self._lock, statements, check)
        except sqlite3.Error as exc:
            raise StoreError(exc) from None

    def _scope_row(self, scope: str) -> tuple | None:
        rows = self._db.execute("SELECT name, manage_principal FROM scopes WHERE name = ?", (scope,)).fetchall()
        return rows[0] if rows else None

    # scopes
    def scopes(self) -> list[str]:
        return [name for (name,) in self._run("SELECT name FROM scopes ORDER BY name")]

    def create_scope(self, scope: str, manage_principal: str | None, now_ms: int) -> None:
        def check() -> None:
            if self._scope_row(scope) is not None:
                raise RuleViolation(f"Secret scope '{scope}' already exists.", RESOURCE_ALREADY_EXISTS)
            if self._db.execute("SELECT COUNT(*) FROM scopes").fetchone()[0] >= MAX_SCOPES:
                raise RuleViolation(f"The local secret store holds at most {MAX_SCOPES} scopes; delete one first.",
                                    RESOURCE_LIMIT_EXCEEDED)

        self._write([("INSERT INTO scopes (name, manage_principal, created) VALUES (?, ?, ?)",
                      (scope, manage_principal, now_ms))], check)

    def delete_scope(self, scope: str) -> None:
        def check() -> None:
            if self._scope_row(scope) is None:
                raise no_scope(scope)

        self._write([("DELETE FROM secrets WHERE scope = ?", (scope,)),
                     ("DELETE FROM scopes WHERE name = ?", (scope,))], check)

    def readable(self, scope: str, is_admin: bool) -> bool:
        """Whether a caller may read the scope (list its keys, reference its secrets); RESOURCE_DOES_NOT_EXIST
        when there is no such scope."""
        with self._lock:
            row = self._scope_row(scope)
        if row is None:
            raise no_scope(scope)
        return is_admin or row[1] == EVERYONE

    # secrets
    def put(self, scope: str, key: str, value: bytes, is_bytes: bool, now_ms: int) -> None:
        if len(value) > MAX_VALUE_BYTES:
            raise RuleViolation(f"The secret value is {len(value)} bytes; at most {MAX_VALUE_BYTES} are allowed.",
                                INVALID_PARAMETER_VALUE)

        def check() -> None:
            if self._scope_row(scope) is None:
                raise no_scope(scope)
            count, exists = self._db.execute(
                "SELECT COUNT(*), SUM(key = ?) FROM secrets WHERE scope = ?", (key, scope)).fetchone()
            if not exists and count >= MAX_SECRETS_PER_SCOPE:
                raise RuleViolation(f"Secret scope '{scope}' holds {MAX_SECRETS_PER_SCOPE} secrets, the most "
                                    "allowed; delete one first.", RESOURCE_LIMIT_EXCEEDED)

        self._write([("INSERT OR REPLACE INTO secrets (scope, key, value, is_bytes, updated) VALUES (?, ?, ?, ?, ?)",
                      (scope, key, value, int(is_bytes), now_ms))], check)

    def keys(self, scope: str) -> list[tuple[str, int]]:
        """(key, last updated in ms) of every secret in the scope: never the values."""
        return [(k, ts) for k, ts in self._run("SELECT key, updated FROM secrets WHERE scope = ? ORDER BY key",
                                               (scope,))]

    def delete(self, scope: str, key: str) -> None:
        def check() -> None:
            if self._scope_row(scope) is None:
                raise no_scope(scope)
            if not self._db.execute("SELECT 1 FROM secrets WHERE scope = ? AND key = ?", (scope, key)).fetchall():
                raise RuleViolation(f"Secret '{key}' does not exist in scope '{scope}'.", RESOURCE_DOES_NOT_EXIST)

        self._write([("DELETE FROM secrets WHERE scope = ? AND key = ?", (scope, key))], check)

    def exists(self, scope: str, key: str) -> bool:
        return bool(self._run("SELECT 1 FROM secrets WHERE scope = ? AND key = ?", (scope, key)))

    def value(self, scope: str, key: str) -> bytes | None:
        """A secret's value, for resolving a reference at deployment only (never answered by the API)."""
        rows = self._run("SELECT value FROM secrets WHERE scope = ? AND key = ?", (scope, key))
        return bytes(rows[0][0]) if rows else None

    # sealed plaintext keys of external models
    def seal(self, name: str, endpoint_id: str, value: bytes) -> None:
        self._write([("INSERT OR REPLACE INTO sealed (name, endpoint_id, value) VALUES (?, ?, ?)",
                      (name, endpoint_id, value))])

    def sealed(self, name: str) -> bytes | None:
        rows = self._run("SELECT value FROM sealed WHERE name = ?", (name,))
        return bytes(rows[0][0]) if rows else None

    def prune_sealed(self, endpoint_id: str, keep: set[str]) -> None:
        """Delete the endpoint's sealed keys but those named in `keep` (all of them when it is empty)."""
        names = [n for (n,) in self._run("SELECT name FROM sealed WHERE endpoint_id = ?", (endpoint_id,))]
        doomed = [n for n in names if n not in keep]
        if doomed:
            self._write([("DELETE FROM sealed WHERE name = ?", (n,)) for n in doomed])

    def close(self) -> None:
        with self._lock:
            self._db.close()
