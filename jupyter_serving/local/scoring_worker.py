"""Run MLflow's own scoring server (the app `mlflow models serve` runs) for one served entity.

Why a wrapper instead of `mlflow models serve`: the scoring server predicts in asyncio's default
thread pool, which has only cpu_count + 4 threads; an entity provisioned for more concurrency
needs that many threads, or requests queue inside the server instead of running in parallel.
One uvicorn worker per process: several workers leave Nagle on and add ~40 ms (uvicorn#3149).

Usage: python -m jupyter_serving.local.scoring_worker MODEL_URI PORT THREADS
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    model_uri, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    started = time.monotonic()
    print(f"Loading model {model_uri} into MLflow's scoring server", flush=True)
    from mlflow.pyfunc import scoring_server

    os.environ[scoring_server._SERVER_MODEL_PATH] = model_uri
    from mlflow.pyfunc.scoring_server.app import app  # loads the model; raises if it cannot

    print(f"Model loaded in {time.monotonic() - started:.1f} s; listening on 127.0.0.1:{port}", flush=True)
    import uvicorn

    try:  # what `mlflow models serve` gets through uvicorn's default loop when uvloop is installed
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=max(threads, 1), thread_name_prefix="predict"))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, workers=1, log_level="info",
                            access_log=False, timeout_keep_alive=120)
    loop.run_until_complete(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
