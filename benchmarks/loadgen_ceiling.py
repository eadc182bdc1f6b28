"""How close does our load generator get to wrk? Loopback only.

Part 1 (ceiling): the same trivial server (tests/fakeserver.py, a raw asyncio server answering fixed
JSON) is hit by wrk and by our generator with the same connection count, server pinned to one
core, clients to the other. Goal: ours >= 0.3 × wrk's QPS.

Part 2 (fidelity): p50 latency at concurrency 1 against a real MLflow scoring server
(`mlflow models serve`, a scikit-learn model saved to a temp dir), ours vs wrk's `--latency`
p50, in interleaved pairs (run-to-run drift on loopback is larger than the client difference,
so only paired runs compare). Goal: within 10 %.

    python benchmarks/loadgen_ceiling.py [--connections 16] [--duration 4] [--pairs 5]

Needs `wrk` (Debian: apt-get install wrk) and at least 2 cores for pinning.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_serving.bench.loadgen import run_closed_loop
from jupyter_serving.bench.target import Target

SERVER_CORE, CLIENT_CORE = 0, 1
BODY = b'{"dataframe_split":{"columns":["sepal_length","sepal_width","petal_length","petal_width"],' \
       b'"data":[[5.1,3.5,1.4,0.2]]}}'
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


# -- processes ------------------------------------------------------------------------------------

def pinned(core: int):
    return lambda: os.sched_setaffinity(0, {core})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen) -> None:
    """Stop a server we started, with its children (its own session/process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_fake_server() -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parent.parent / "tests" / "fakeserver.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True, preexec_fn=pinned(SERVER_CORE), start_new_session=True,
        cwd=Path(__file__).resolve().parent.parent)
    line = process.stdout.readline()
    if not line.startswith("LISTENING"):
        stop_process(process)
        raise SystemExit(f"fake server failed to start: {line!r}")
    return process, int(line.split()[1])


def save_sklearn_model(directory: Path) -> Path:
    import mlflow.sklearn
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    features = iris.data.set_axis(["sepal_length", "sepal_width", "petal_length", "petal_width"], axis=1)
    model = LogisticRegression(max_iter=500).fit(features, iris.target)
    path = directory / "iris-model"
    mlflow.sklearn.save_model(model, str(path), input_example=pd.DataFrame(features.head(2)))
    return path


def start_mlflow_server(model_dir: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned(SERVER_CORE), start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mlflow models serve exited; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return process, port
        except OSError:
            time.sleep(0.2)  # waiting for an external server to come up; nothing to poll on
    stop_process(process)
    raise SystemExit(f"mlflow models serve did not answer /ping within 120 s; see {log_path}")


# -- clients --------------------------------------------------------------------------------------

def wrk(url: str, connections: int, duration: float, script: Path) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-s",
         str(script), url], capture_output=True, text=True, check=True, preexec_fn=pinned(CLIENT_CORE)).stdout
    qps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"qps": qps, "p50_ms": float(p50.group(1)) * _UNITS[p50.group(2)],
            "errors": int(errors.group(1)) if errors else 0}


def wrk_script(directory: Path) -> Path:
    script = directory / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{BODY.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n')
    return script


def ours(url: str, connections: int, duration: float, loop_kind: str) -> dict:
    target = Target.from_url(url, BODY)
    if loop_kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(
            run_closed_loop(target, connections, duration_s=duration, warmup_s=1.0))
    finally:
        loop.close()
    errors = result.rate_limited + sum(result.errors.values())
    return {"qps": result.qps, "p50_ms": result.latency.percentile(50) / 1000, "errors": errors,
            "loop_cpu": result.loop_cpu}


def loop_kinds() -> list[str]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return ["asyncio"]
    return ["asyncio", "uvloop"]


# -- the two parts --------------------------------------------------------------------------------

def ceiling(connections: int, duration: float, workdir: Path) -> None:
    process, port = start_fake_server()
    url = f"http://127.0.0.1:{port}/serving-endpoints/bench/invocations"
    try:
        reference = wrk(url, connections, duration, wrk_script(workdir))
        print(f"\nPart 1: ceiling against a trivial asyncio server, {connections} connections, "
              f"{duration:g} s, server on core {SERVER_CORE}, clients on core {CLIENT_CORE}")
        print(f"{'client':<22}{'QPS':>10}{'ratio to wrk':>14}{'client CPU':>12}{'errors':>8}")
        print(f"{'wrk':<22}{reference['qps']:>10.0f}{1:>14.2f}{'':>12}{reference['errors']:>8}")
        for kind in loop_kinds():
            mine = ours(url, connections, duration, kind)
            ratio = mine["qps"] / reference["qps"]
            verdict = "ok" if ratio >= 0.3 else "BELOW GOAL 0.3"
            print(f"{'ours (' + kind + ')':<22}{mine['qps']:>10.0f}{ratio:>14.2f}"
                  f"{mine['loop_cpu']:>11.0%} {mine['errors']:>7}  {verdict}")
    finally:
        stop_process(process)


def fidelity(pairs: int, duration: float, workdir: Path) -> None:
    print(f"\nPart 2: p50 at concurrency 1 against `mlflow models serve` (sklearn, 1 row), "
          f"{pairs} interleaved pairs of {duration:g} s")
    model_dir = save_sklearn_model(workdir)
    started = time.monotonic()
    process, port = start_mlflow_server(model_dir, workdir / "mlflow-serve.log")
    print(f"(scoring server ready in {time.monotonic() - started:.1f} s)")
    url = f"http://127.0.0.1:{port}/invocations"
    script = wrk_script(workdir)
    kind = loop_kinds()[-1]
    try:
        # Warm the server with both clients first: its first seconds of predictions are slower,
        # which would bias whichever client ran first.
        ours(url, 1, duration, kind)
        wrk(url, 1, duration, script)
        rows = []
        for pair in range(pairs):
            order = ("wrk", "ours") if pair % 2 else ("ours", "wrk")
            measured = {}
            for client in order:
                measured[client] = (wrk(url, 1, duration, script) if client == "wrk"
                                    else ours(url, 1, duration, kind))
            rows.append(measured)
        print(f"{'pair':<6}{'wrk p50 ms':>12}{'ours p50 ms':>13}{'ratio':>8}{'wrk QPS':>10}{'ours QPS':>10}")
        for i, row in enumerate(rows, 1):
            w, o = row["wrk"], row["ours"]
            print(f"{i:<6}{w['p50_ms']:>12.3f}{o['p50_ms']:>13.3f}{o['p50_ms'] / w['p50_ms']:>8.3f}"
                  f"{w['qps']:>10.0f}{o['qps']:>10.0f}")
        ratios = [r["ours"]["p50_ms"] / r["wrk"]["p50_ms"] for r in rows]
        wrk_median = statistics.median(r["wrk"]["p50_ms"] for r in rows)
        ours_median = statistics.median(r["ours"]["p50_ms"] for r in rows)
        paired = statistics.median(ratios)
        verdict = "ok" if abs(paired - 1) <= 0.10 else "OUTSIDE GOAL ±10 %"
        print(f"median p50: wrk {wrk_median:.3f} ms, ours ({kind}) {ours_median:.3f} ms; "
              f"median paired ratio ours/wrk {paired:.3f}  {verdict}")
    finally:
        stop_process(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 cores: one for the server, one for the client")
    os.sched_setaffinity(0, {CLIENT_CORE})  # our generator runs in this process
    print(f"python {sys.version.split()[0]}, loops: {', '.join(loop_kinds())}")
    with tempfile.TemporaryDirectory(prefix="loadgen-ceiling-") as tmp:
        ceiling(args.connections, args.duration, Path(tmp))
        if not args.skip_mlflow:
            fidelity(args.pairs, args.duration, Path(tmp))


if __name__ == "__main__":
    main()
