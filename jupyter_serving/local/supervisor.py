"""Model-server processes: spawn MLflow's scoring server, wait until it answers, stop it.

One `ModelServer` is one process serving one model version. What to do when it dies (recover,
fail an update) is decided by the engine; this module only runs processes and reports.

Nothing reaches a model except through the gateway: a model server listens on a Unix-domain socket
(mode 0600, in a 0700 directory of the data dir), never on a TCP port, so neither another local user
nor a client without a token can query it directly or past its concurrency gate. It starts with an
allow-listed environment, so it does not inherit the backend's credentials.
"""
from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_serving.local.upstream import UpstreamClosed, UpstreamPool


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the backend dies, even by SIGKILL,
    so that no model server outlives the backend that supervises it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ModelServerFailed(Exception):
    """The scoring server exited or never answered; the message carries its log tail."""


# What a model server may inherit from the backend's environment (plus its entity's own variables).
_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "PYTHONPATH",
    "PYTHONHASHSEED", "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "XDG_CACHE_HOME", "HF_HOME",
})
_ENV_PREFIXES = ("LC_", "MLFLOW_", "COVERAGE_", "COV_CORE_")
_SECRET = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|_KEY|CREDENTIALS?)(_|$)|^DATABRICKS_", re.IGNORECASE)
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
_fallback_socket_dir: Path | None = None


def model_env(inherited: dict[str, str], own: dict[str, str]) -> dict[str, str]:
    """A model server's environment: the allow-listed, non-secret part of `inherited`, then `own`."""
    env = {k: v for k, v in inherited.items()
           if (k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)) and not _SECRET.search(k)}
    return {**env, **own}


def _socket_dir(log_path: Path) -> Path:
    """`<data dir>/sockets` (the data dir is the ancestor of the logs holding the token file)."""
    home = next((p for p in log_path.parents if (p / "token").is_file()), None)
    if home is None or len(str(home / "sockets")) > _MAX_SOCKET_PATH - 18:
        return _private_tmp_dir()
    directory = home / "sockets"
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


def _private_tmp_dir() -> Path:
    """A 0700 directory under /tmp, for data dirs whose path is too long for a socket address."""
    global _fallback_socket_dir
    if _fallback_socket_dir is None or not _fallback_socket_dir.is_dir():
        _fallback_socket_dir = Path(tempfile.mkdtemp(prefix="jsrv-", dir="/tmp"))
    return _fallback_socket_dir


def tail(path: Path, max_bytes: int = 8000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


class ModelServer:
    def __init__(self, model_uri: str, log_path: Path, threads: int, env: dict[str, str]):
        self.model_uri = model_uri
        self.log_path = log_path
        self.threads = threads
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None  # never a TCP port any more: the server listens on `socket_path`
        self.socket_path: Path | None = None
        self.expected_exit = False
        self._upstream: UpstreamPool | None = None

    @property
    def upstream(self) -> UpstreamPool:
        """The keep-alive connection pool to this server's socket (one per server; call in the loop)."""
        if self._upstream is None or self._upstream.closed:
            self._upstream = UpstreamPool(str(self.socket_path))
        return self._upstream

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        if self.socket_path is None:  # kept across restarts, so the connection pool stays valid
            self.socket_path = _socket_dir(self.log_path) / f"{secrets.token_hex(8)}.sock"
        self.socket_path.unlink(missing_ok=True)
        self.expected_exit = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting scoring server\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_serving.local.scoring_worker", self.model_uri,
                 str(self.socket_path), str(self.threads)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=model_env(dict(os.environ), self.env), start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    async def wait_ready(self, timeout: float) -> float:
        """Poll /ping until it answers; returns seconds taken. Raises ModelServerFailed."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise ModelServerFailed(f"The model server exited with code {code} while loading the model.")
            try:
                status, _, _ = await self.upstream.request("GET", "/ping", timeout=2.0)
                if status == 200:
                    return time.monotonic() - started
            except (UpstreamClosed, asyncio.TimeoutError, OSError):
                pass
            await asyncio.sleep(0.2)
        await self.stop()
        raise ModelServerFailed(f"The model server did not answer within {timeout:.0f} s.")

    async def stop(self, grace: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None
        if proc is None or proc.poll() is not None:
            self._remove_socket()
            return
        self.expected_exit = True
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            self._remove_socket()
            return
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._remove_socket()

    def _remove_socket(self) -> None:
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)
