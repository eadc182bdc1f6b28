"""Start, stop and find the embedded local backend from the client side.

The backend (`jupyter_serving.local`) is a separate program; this module only spawns it, reads the
files it leaves in its data dir, and probes it over HTTP. It never imports the backend itself.

Data dir layout (default `~/.jupyter-serving`, or `$JUPYTER_SERVING_HOME`):
    token          bearer token of the local admin user (mode 0600)
    server.json    {"url", "port", "pid", "cloud"} of the running backend, written once it listens
    state.db       endpoints, configs, tags, ACLs (SQLite)
    mlflow.db      the MLflow tracking store and model registry (SQLite); artifacts/ beside it
    logs/          backend.log and one log per model server
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CLOUD = "aws"


class LocalBackendError(RuntimeError):
    """An expected failure starting or reaching the local backend; the message says what to do."""


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


@dataclass(frozen=True)
class BackendInfo:
    url: str
    port: int
    pid: int
    cloud: str
    home: Path

    @property
    def token(self) -> str:
        return Paths(self.home).token.read_text().strip()

    def env(self) -> dict[str, str]:
        """Variables that point the official clients and MLflow at this backend and its registry."""
        uri = Paths(self.home).mlflow_uri
        return {
            "DATABRICKS_HOST": self.url,
            "DATABRICKS_TOKEN": self.token,
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_REGISTRY_URI": uri,
        }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/.well-known/databricks-config", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def status(data_dir: str | os.PathLike | None = None) -> BackendInfo | None:
    """The running backend for this data dir, or None."""
    home = home_dir(data_dir)
    try:
        info = json.loads(Paths(home).server.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not _pid_alive(info["pid"]) or not _answers(info["url"]):
        return None
    return BackendInfo(info["url"], info["port"], info["pid"], info["cloud"], home)


def start(
    data_dir: str | os.PathLike | None = None,
    port: int = 0,
    cloud: str | None = None,
    timeout: float = 90.0,
    extra_args: list[str] | None = None,
) -> tuple[BackendInfo, bool]:
    """Start the backend in the background unless it runs already. Returns (info, started_now)."""
    home = home_dir(data_dir)
    running = status(home)
    if running:
        return running, False
    paths = ensure_home(home)
    paths.server.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "jupyter_serving.local", "--data-dir", str(home), "--port", str(port)]
    if cloud:
        cmd += ["--cloud", cloud]
    cmd += extra_args or []
    log = open(paths.logs / "backend.log", "ab")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalBackendError(
                f"The local backend exited during start (code {proc.returncode}); "
                f"see {paths.logs / 'backend.log'}."
            )
        info = status(home)
        if info and info.pid == proc.pid:
            return info, True
        time.sleep(0.1)
    proc.terminate()
    raise LocalBackendError(
        f"The local backend did not answer within {timeout:.0f} s; see {paths.logs / 'backend.log'}."
    )


def stop(data_dir: str | os.PathLike | None = None, timeout: float = 30.0) -> bool:
    """Stop the backend (and, through it, its model servers). Returns False if none was running."""
    home = home_dir(data_dir)
    info = status(home)
    if info is None:
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(info.pid):
            return True
        time.sleep(0.1)
    os.kill(info.pid, signal.SIGKILL)
    return True


def ensure_running(data_dir: str | os.PathLike | None = None, cloud: str | None = None) -> BackendInfo:
    """The running backend, started on demand (what the magics use when no workspace is configured)."""
    info, _ = start(data_dir, cloud=cloud)
    return info
