"""Model-server processes: spawn MLflow's scoring server, wait until it answers, stop it.

One `ModelServer` is one process serving one model version. What to do when it dies (recover,
fail an update) is decided by the engine; this module only runs processes and reports.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        self.port: int | None = None
        self.expected_exit = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        self.port = free_port()
        self.expected_exit = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting scoring server on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_serving.local.scoring_worker", self.model_uri,
                 str(self.port), str(self.threads)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env}, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float) -> float:
        """Poll /ping until it answers; returns seconds taken. Raises ModelServerFailed."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise ModelServerFailed(f"The model server exited with code {code} while loading the model.")
            try:
                async with session.get(self.url + "/ping", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            await asyncio.sleep(0.2)
        await self.stop()
        raise ModelServerFailed(f"The model server did not answer within {timeout:.0f} s.")

    async def stop(self, grace: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        self.expected_exit = True
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
