"""The data dir both sides share: where the local backend keeps its state, and how to find it.

Default `~/.jupyter-serving`, or `$JUPYTER_SERVING_HOME`:
    token          bearer token of the local admin user (mode 0600)
    server.json    {"url", "port", "pid", "cloud"} of the running backend, written once it listens
    state.db       endpoints, configs, tags, ACLs (SQLite)
    secrets.db     the local secret store (SQLite, mode 0600): secret scopes, their values, and the
                   plaintext API keys of external models (never in state.db)
    ai_gateway.db  AI Gateway usage tracking and inference tables (SQLite, mode 0600)
    mlflow.db      the MLflow tracking store and model registry (SQLite); artifacts/ beside it
    logs/          backend.log and one log per model server

Imported by the client (`client.localctl`) and by the backend (`local`); imports nothing of ours.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CLOUD = "aws"


def home_dir(data_dir: str | os.PathLike | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get("JUPYTER_SERVING_HOME")
    return Path(env).expanduser().resolve() if env else Path.home() / ".jupyter-serving"


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def token(self) -> Path:
        return self.home / "token"

    @property
    def server(self) -> Path:
        return self.home / "server.json"

    @property
    def state_db(self) -> Path:
        return self.home / "state.db"

    @property
    def secrets_db(self) -> Path:
        return self.home / "secrets.db"

    @property
    def ai_gateway_db(self) -> Path:
        return self.home / "ai_gateway.db"

    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"


def ensure_home(home: Path) -> Paths:
    paths = Paths(home)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    for sub in (paths.logs, paths.artifacts, paths.models):
        sub.mkdir(exist_ok=True)
    ensure_token(paths)
    return paths


def ensure_token(paths: Paths) -> str:
    """The admin token, created once with mode 0600 (never world-readable, not even briefly)."""
    try:
        return paths.token.read_text().strip()
    except FileNotFoundError:
        pass
    token = "dapi" + secrets.token_hex(16)
    fd = os.open(paths.token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


