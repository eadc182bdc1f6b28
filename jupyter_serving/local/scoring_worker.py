"""Run MLflow's own scoring server (the app `mlflow models serve` runs) for one served entity.

Why a wrapper instead of `mlflow models serve`: the scoring server predicts in asyncio's default
thread pool, which has only cpu_count + 4 threads; an entity provisioned for more concurrency
needs that many threads, or requests queue inside the server instead of running in parallel.
The pool has twice that: a query whose client went away releases its slot in the gateway at once,
but its prediction runs on (a thread cannot be cancelled), and new queries must not wait behind it.
One uvicorn worker per process: several workers leave Nagle on and add ~40 ms (uvicorn#3149).

MLflow's scoring server does not stream, so the worker adds `POST /stream` beside MLflow's routes:
the same JSON body, parsed by MLflow's own parser, answered from the loaded model's
`predict_stream` as server-sent events (`data: {chunk}` per chunk, then `data: [DONE]`), each chunk
written as soon as the model yields it. Errors before the first chunk answer in MLflow's JSON error
shape with their status; an error after it ends the stream with a `data: {"error_code": ...}` event.

It listens on the Unix-domain socket SOCKET (created 0600; only the backend connects), never on a
TCP port, and says nowhere in its log where that socket is.

Usage: python -m jupyter_serving.local.scoring_worker MODEL_URI SOCKET THREADS
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import os
import socket
import sys
import time
import traceback
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


def _event(chunk) -> bytes:
    """One server-sent event carrying `chunk` (a dict, a pydantic or MLflow dataclass object, or a string)."""
    if hasattr(chunk, "model_dump"):
        chunk = chunk.model_dump(exclude_none=True)
    elif hasattr(chunk, "to_dict"):
        chunk = chunk.to_dict()
    return b"data: " + json.dumps(chunk, default=str).encode() + b"\n\n"


_END = object()


def _next(iterator):
    return next(iterator, _END)


async def _events(loop, context, iterator, first):
    """The stream's events: `first`, then each next chunk (each step in the pool, in the stream's context)."""
    pending = None
    try:
        chunk = first
        while chunk is not _END:
            yield _event(chunk)
            pending = loop.run_in_executor(None, context.run, _next, iterator)
            chunk = await pending
            pending = None
        yield b"data: [DONE]\n\n"
    except Exception as exc:  # noqa: BLE001 - the stream has begun: its end says what failed
        traceback.print_exc()
        yield _event({"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"})
    finally:  # the client went away, or the stream ended: close the model's generator after its step
        if pending is not None:
            pending.add_done_callback(lambda _f: loop.run_in_executor(None, context.run, _close, iterator))
        else:
            loop.run_in_executor(None, context.run, _close, iterator)


def _refusal(exc: Exception):
    """The JSON answer (MLflow's error shape) for a stream that failed before its first chunk."""
    from fastapi.responses import Response
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        error, status = exc, exc.get_http_status_code()
    elif isinstance(exc, NotImplementedError):
        error = MlflowException.invalid_parameter_value(
            f"This model does not stream ({exc}); query it without \"stream\": true.")
        status = 400
    elif isinstance(exc, (ValueError, TypeError)):
        error, status = MlflowException.invalid_parameter_value(f"Invalid streaming request: {exc}"), 400
    else:  # the model raised before its first chunk
        traceback.print_exception(exc)
        error, status = MlflowException(f"{type(exc).__name__}: {exc}"), 500
    return Response(error.serialize_as_json(), status_code=status, media_type="application/json")


def add_streaming(app, model) -> None:
    """`POST /stream`: the model's `predict_stream` as server-sent events (see the module docstring)."""
    from fastapi.responses import StreamingResponse
    from mlflow.pyfunc import scoring_server

    input_schema = model.metadata.get_input_schema()

    def open_stream(raw: bytes):
        body = json.loads(raw)
        if isinstance(body, dict):
            body.pop("stream", None)
        parsed = scoring_server._parse_json_data(json.dumps(body), model.metadata, input_schema)
        iterator = iter(model.predict_stream(parsed.data, params=parsed.params))
        return iterator, _next(iterator)

    async def stream(request):
        raw = await request.body()
        loop = asyncio.get_running_loop()
        # One context for the whole stream: each step runs in some pool thread, and MLflow's
        # predict_stream sets and resets context variables across steps (a reset must see its own set).
        context = contextvars.copy_context()
        try:
            iterator, first = await loop.run_in_executor(None, context.run, open_stream, raw)
        except Exception as exc:  # noqa: BLE001 - every failure before the first chunk is a JSON answer
            return _refusal(exc)
        return StreamingResponse(_events(loop, context, iterator, first), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    app.router.add_route("/stream", stream, methods=["POST"])  # a plain Starlette route: no validation


def _close(iterator) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except (ValueError, RuntimeError):  # still running in another thread, or it refused to stop
            pass


def main() -> None:
    model_uri, socket_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    started = time.monotonic()
    print(f"Loading model {model_uri} into MLflow's scoring server", flush=True)
    from mlflow.pyfunc import scoring_server

    _json_errors(scoring_server)
    model = scoring_server.load_model_with_mlflow_config(model_uri)  # raises if it cannot load
    app = scoring_server.init(model)  # what `mlflow models serve` runs (mlflow.pyfunc.scoring_server.app)
    add_streaming(app, model)

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
