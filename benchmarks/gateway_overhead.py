"""What the local backend's gateway costs: the same model and client concurrency, once through
`/serving-endpoints/{name}/invocations` and once straight to the MLflow scoring server behind it.

The client is wrk (Debian package `wrk`), identical for both paths; runs are interleaved
(direct, gateway, direct, ...) so that machine drift cancels, and medians are compared.
Goal: gateway QPS >= 0.9 x direct, added p50 <= 1 ms.

    python benchmarks/gateway_overhead.py [--duration 5] [--rounds 3] [--concurrency 1 8]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_serving.client import localctl  # noqa: E402

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, script: Path, connections: int, duration: float) -> dict:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(duration))}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True).stdout
    qps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "99"):
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        lat[pct] = float(value) * _UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"qps": qps, "p50_ms": lat["50"], "p99_ms": lat["99"], "non_2xx": int(bad.group(1)) if bad else 0}


def wrk_script(directory: Path, body: str, token: str | None) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}",
             'wrk.headers["Content-Type"] = "application/json"']
    if token:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    path = directory / ("gateway.lua" if token else "direct.lua")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def setup_endpoint(home: Path) -> tuple[localctl.BackendInfo, str, int]:
    info, _ = localctl.start(home)
    os.environ.update(info.env())
    import mlflow
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    X = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    with mlflow.start_run():
        logged = mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(X, iris.target), name="model",
                                          input_example=X.head(2))
    version = mlflow.register_model(logged.model_uri, "bench.gateway.iris").version
    w = WorkspaceClient(host=info.url, token=info.token)
    name = "gateway-overhead"
    w.serving_endpoints.create_and_wait(name, config=EndpointCoreConfigInput(name=name, served_entities=[
        ServedEntityInput(entity_name="bench.gateway.iris", entity_version=str(version),
                          min_provisioned_concurrency=64, max_provisioned_concurrency=64)]))
    entity = w.serving_endpoints.get(name).config.served_entities[0].name
    logs = w.serving_endpoints.build_logs(name, entity).logs
    port = int(re.search(r"port (\d+)", logs).group(1))
    body = json.dumps({"dataframe_records": X.head(1).to_dict("records")})
    return info, body, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
        home = Path(tmp) / "home"
        info, body, port = setup_endpoint(home)
        try:
            direct_url = f"http://127.0.0.1:{port}/invocations"
            gateway_url = f"{info.url}/serving-endpoints/gateway-overhead/invocations"
            scripts = {"direct": wrk_script(Path(tmp), body, None),
                       "gateway": wrk_script(Path(tmp), body, info.token)}
            for url, script in ((direct_url, scripts["direct"]), (gateway_url, scripts["gateway"])):
                run_wrk(url, script, 4, 1.0)  # warm-up: connections, JIT-free paths, model caches
            print(f"{'c':>3} {'path':>8} {'QPS':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
            summary = []
            for c in args.concurrency:
                runs: dict[str, list[dict]] = {"direct": [], "gateway": []}
                for _ in range(args.rounds):
                    runs["direct"].append(run_wrk(direct_url, scripts["direct"], c, args.duration))
                    runs["gateway"].append(run_wrk(gateway_url, scripts["gateway"], c, args.duration))
                med = {path: {k: statistics.median(r[k] for r in rs) for k in ("qps", "p50_ms", "p99_ms", "non_2xx")}
                       for path, rs in runs.items()}
                for path in ("direct", "gateway"):
                    m = med[path]
                    print(f"{c:>3} {path:>8} {m['qps']:>9.1f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} "
                          f"{m['non_2xx']:>8.0f}")
                ratio = med["gateway"]["qps"] / med["direct"]["qps"]
                added = med["gateway"]["p50_ms"] - med["direct"]["p50_ms"]
                summary.append((c, ratio, added))
            print()
            for c, ratio, added in summary:
                verdict = "meets" if ratio >= 0.9 and added <= 1.0 else "misses"
                print(f"c={c}: gateway/direct QPS = {ratio:.2f} (goal >= 0.90), added p50 = {added:+.2f} ms "
                      f"(goal <= 1 ms): {verdict} the goal")
        finally:
            localctl.stop(home)


if __name__ == "__main__":
    main()
