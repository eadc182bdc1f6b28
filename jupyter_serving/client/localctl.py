"""Start, stop and find the embedded local backend from the client side.

The backend (`jupyter_serving.local`) is a separate program; this module only spawns it, reads the
files it leaves in its data dir, and probes it over HTTP. It never imports the backend itself.

Paths and the data dir layout are in `jupyter_serving.datadir`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jupyter_serving.datadir import Paths, ensure_home, home_dir


class LocalBackendError(RuntimeError):
    """An expected failure starting or reaching the local backend; the message says what to do."""


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
    except ChildProcessError:  # not ours (a kernel started it): a zombie there has exited all the same
        return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


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


def unreadable_rows(info: BackendInfo) -> int:
    """How many endpoint rows of state.db the running backend could not read at startup (0 if unknown)."""
    request = urllib.request.Request(info.url + "/api/2.0/jupyter-serving/backend",
                                     headers={"Authorization": f"Bearer {info.token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(json.loads(resp.read()).get("unreadable_endpoint_rows") or 0)
    except (urllib.error.URLError, OSError, ValueError):
        return 0


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


def needs_restart(data_dir: str | os.PathLike | None = None, url: str | None = None) -> bool:
    """Whether a client of the local backend must connect again, which starts one on demand: no
    backend answers for this data dir any more, or (given the `url` the client uses) it answers at
    another address since it was restarted. The magics reconnect at once; the lab panel only when
    the user retries."""
    info = status(data_dir)
    return info is None or (url is not None and info.url != url)
