"""Which MLflow registry a notebook's `mlflow.register_model` writes to, and finding a model that went
to another one than the local backend's (MLflow's default `./mlflow.db`, or a registry the user
set with MLFLOW_*). Reads SQLite registries directly: mlflow is never imported here.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from jupyter_serving.core.errors import Hint, NotFoundError

MLFLOW_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def local_registry_uri(data_dir: str | None = None) -> str:
    """The local backend's registry (its data dir's mlflow.db), without starting anything."""
    from jupyter_serving.datadir import Paths, home_dir

    return Paths(home_dir(data_dir)).mlflow_uri


def point_mlflow_at(uri: str) -> dict[str, str]:
    """Set MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI to `uri` where the user has not set them; the
    variables set. MLflow reads them when it next resolves a URI (imported or not)."""
    done = {}
    for var in MLFLOW_VARS:
        if not os.environ.get(var):
            os.environ[var] = uri
            done[var] = uri
    return done


@dataclass(frozen=True)
class Found:
    uri: str  # the registry that has the model
    version: str
    storage_location: str  # where its files are: what `mlflow.register_model` takes
    label: str  # how to name the registry to a user: "./mlflow.db", "MLFLOW_REGISTRY_URI"


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def _same(a: str, b: str) -> bool:
    pa, pb = _sqlite_path(a), _sqlite_path(b)
    if pa is not None and pb is not None:
        try:
            return pa.resolve() == pb.resolve()
        except OSError:
            return False
    return a.rstrip("/") == b.rstrip("/")


def _candidates(backend_uri: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for var in ("MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_URI"):
        uri = os.environ.get(var)
        if uri:
            out.append((uri, var))
    out.append((f"sqlite:///{Path.cwd() / 'mlflow.db'}", "./mlflow.db"))
    seen: list[str] = [backend_uri]
    unique = []
    for uri, label in out:
        if not any(_same(uri, s) for s in seen):
            seen.append(uri)
            unique.append((uri, label))
    return unique


def _lookup(path: Path, model: str, version: str | None) -> tuple[str, str] | None:
    """(version, storage location) of `model` in the SQLite registry at `path`, or None."""
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0) as db:
            rows = db.execute("SELECT version, COALESCE(storage_location, source) FROM model_versions "
                              "WHERE name = ? ORDER BY version DESC", (model,)).fetchall()
    except sqlite3.Error:
        return None
    for v, location in rows:
        if version in (None, "") or str(v) == str(version):
            return str(v), str(location or "")
    return None


def find_elsewhere(model: str, version: str | None, backend_uri: str) -> Found | None:
    """`model` (version `version`, or its latest) in a registry other than the backend's, if any."""
    for uri, label in _candidates(backend_uri):
        path = _sqlite_path(uri)
        hit = _lookup(path, model, version) if path is not None else None
        if hit:
            return Found(uri, hit[0], hit[1], label)
    return None


def registered_elsewhere(model: str, version: str | None, backend_uri: str) -> NotFoundError | None:
    """The error to show when the backend's registry lacks `model` but another registry has it."""
    found = find_elsewhere(model, version, backend_uri)
    if found is None:
        return None
    where = found.label if found.label == "./mlflow.db" else f"{found.uri} (from {found.label})"
    fix = (f"mlflow.set_registry_uri('{backend_uri}'); "
           f"mlflow.register_model('{found.storage_location}', '{model}')")
    message = (f"Model '{model}' is not in the local backend's registry ({backend_uri}), but version "
               f"{found.version} is registered in {where}")
    tail = (" Copy it over in Python, then run the command again: "
            f"`{fix}` (it becomes version 1 there if it is the first).")
    return NotFoundError(message, Hint(python=tail.strip(), magic=tail.strip()),
                         error_code="RESOURCE_DOES_NOT_EXIST")
