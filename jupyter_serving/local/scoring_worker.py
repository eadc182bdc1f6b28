"""Run MLflow's own scoring server (the app `mlflow models serve` runs) for one served entity.

Why a wrapper instead of `mlflow models serve`: the scoring server predicts in asyncio's default
thread pool, which has only cpu_count + 4 threads; an entity provisioned for more concurrency
needs that many threads, or requests queue inside the server instead of running in parallel.
The pool has twice that: a query whose client went away releases its slot in the gateway at once,
but its prediction runs on (a thread cannot be cancelled), and new queries must not wait behind it.
One uvicorn worker per process: several workers leave Nagle on and add ~40 ms (uvicorn#3149).

It listens on the Unix-domain socket SOCKET (created 0600; only the backend connects), never on a
TCP port, and says nowhere in its log where that socket is.

Usage: python -m jupyter_serving.local.scoring_worker MODEL_URI SOCKET THREADS
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def _listen(path: str) -> socket.socket:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(2048)
    return sock


def _json_errors(scoring_server) -> None:
    """An output JSON cannot encode becomes a JSON error answer, not a bare `Internal Server Error`."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

    def guarded(encode):
        def encode_or_fail(*args, **kwargs):
            try:
                return encode(*args, **kwargs)
            except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                raise MlflowException(f"The model's output cannot be encoded as JSON: {exc}",
                                      error_code=INTERNAL_ERROR) from exc
        return encode_or_fail

    for name in ("predictions_to_json", "unwrapped_predictions_to_json"):
        if hasattr(scoring_server, name):
            setattr(scoring_server, name, guarded(getattr(scoring_server, name)))


def main() -> None:
    model_uri, socket_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    started = time.monotonic()
    print(f"Loading model {model_uri} into MLflow's scoring server", flush=True)
    from mlflow.pyfunc import scoring_server

    os.environ[scoring_server._SERVER_MODEL_PATH] = model_uri
    _json_errors(scoring_server)
    from mlflow.pyfunc.scoring_server.app import app  # loads the model; raises if it cannot

    print(f"Model loaded in {time.monotonic() - started:.1f} s; serving", flush=True)
    import uvicorn

    try:  # what `mlflow models serve` gets through uvicorn's default loop when uvloop is installed
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2 * max(threads, 1), thread_name_prefix="predict"))
    config = uvicorn.Config(app, workers=1, log_level="info", access_log=False, timeout_keep_alive=120)
    loop.run_until_complete(uvicorn.Server(config).serve(sockets=[_listen(socket_path)]))


if __name__ == "__main__":
    main()
