"""One SQLite transaction, the way every store of the backend writes: all of it or nothing."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable


def transaction(db: sqlite3.Connection, lock: threading.Lock, statements: list[tuple[str, tuple]],
                check: Callable[[], None] | None = None) -> None:
    """Run `statements` in one `BEGIN IMMEDIATE` transaction under `lock`, after `check()` (which may
    raise, and then nothing is written). A refusal of the database raises sqlite3.Error, rolled back."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            if check is not None:
                check()
            for sql, args in statements:
                db.execute(sql, args)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
