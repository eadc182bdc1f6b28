"""What the local backend's gateway costs: the same model and client concurrency, once through
`/serving-endpoints/{name}/invocations` and once straight to the MLflow scoring server behind it.

Model servers listen on a private Unix-domain socket (the data dir's `sockets/`), which wrk cannot
reach, so both paths are driven by the same small asyncio client here: `c` keep-alive connections
in a closed loop, HTTP/1.1 written and parsed by hand (TCP to the gateway, the Unix socket to the
model server). Runs are short, paired and interleaved (each round runs every path, in an order that
alternates between rounds) so that machine drift cancels, and the medians of the per-round ratios
and differences are compared. The gateway rows also show the backend's CPU time per request (from
/proc), which machine noise hardly moves: the gateway's own cost.
Goal: gateway QPS >= 0.95 x direct, added p50 <= 0.5 ms.

A third path, `relay`, is the floor any gateway starts from: a do-nothing byte relay (its own process,
uvloop, one Unix-socket connection per client connection, no parsing) between the same TCP client and
the model server. What the gateway adds over the relay is its own work (HTTP, auth, routing, limits,
counting); what the relay adds over direct is the cost of one more process hop on this machine.

`--stream` measures a streaming chat model instead (a ChatModel whose `predict_stream` waits
`--ttft-ms` before its first token and `--itl-ms` before each later one): TTFT (request sent to first
content chunk) and the gaps between content chunks, through the gateway (`stream: true` on
`/invocations`, server-sent events relayed piece by piece) and straight to the model worker's
`/stream` route, paired the same way. Goal: TTFT through the gateway within 1 ms of the worker's own.

    python benchmarks/gateway_overhead.py [--duration 1.5] [--rounds 8] [--concurrency 1 8]
    python benchmarks/gateway_overhead.py --stream [--requests 20] [--rounds 3] [--ttft-ms 50] [--itl-ms 10]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_serving.client import localctl

_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def request_bytes(path: str, host: str, body: str, token: str | None) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            f"Content-Length: {len(body.encode())}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body.encode()


async def _connection(connect, request: bytes, deadline: float, latencies: list[float], bad: list[int]) -> None:
    reader, writer = await connect()
    try:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(_CONTENT_LENGTH.search(head).group(1)))
            latencies.append(time.perf_counter() - began)
            if head[9:12] != b"200":
                bad[0] += 1
    finally:
        writer.close()


async def closed_loop(connect, request: bytes, connections: int, duration: float) -> dict:
    latencies: list[float] = []
    bad = [0]
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(_connection(connect, request, deadline, latencies, bad) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000.0  # noqa: E731
    return {"qps": len(latencies) / elapsed, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "non_2xx": bad[0],
            "n": len(latencies)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux), 0 where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed_run(connect, request: bytes, c: int, duration: float, pid: int | None) -> dict:
    """One closed-loop run, with the CPU the process `pid` spent per request (µs) when given."""
    before = cpu_seconds(pid) if pid else 0.0
    result = await closed_loop(connect, request, c, duration)
    result["cpu_us"] = (cpu_seconds(pid) - before) / max(result["n"], 1) * 1e6 if pid else float("nan")
    return result


class _Pipe(asyncio.Protocol):
    """One side of the byte relay: what arrives is written to the other side as it is. The client's
    side is made with `upstream` (the model server's socket) and opens the other side itself."""

    def __init__(self, upstream: str | None = None, peer: _Pipe | None = None):
        self.upstream, self.peer, self.transport, self.early = upstream, peer, None, []

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.upstream is not None:
            asyncio.get_running_loop().create_task(self._open_upstream())

    async def _open_upstream(self) -> None:
        _, self.peer = await asyncio.get_running_loop().create_unix_connection(lambda: _Pipe(peer=self),
                                                                               self.upstream)
        for data in self.early:
            self.peer.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.early.append(data)
        else:
            self.peer.transport.write(data)

    def connection_lost(self, exc) -> None:
        if self.peer is not None:
            self.peer.transport.close()


def serve_relay(sock: str) -> None:
    """The relay process: listen on a free loopback port, print it, relay until killed."""
    import uvloop

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(lambda: _Pipe(upstream=sock), "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    uvloop.run(run())


def start_relay(sock: Path) -> tuple[subprocess.Popen, int]:
    relay = subprocess.Popen([sys.executable, __file__, "--relay-to", str(sock)], stdout=subprocess.PIPE, text=True)
    return relay, int(relay.stdout.readline())


def setup_endpoint(home: Path) -> tuple[localctl.BackendInfo, str, Path]:
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
    sockets = list((home / "sockets").glob("*.sock"))
    if len(sockets) != 1:  # a data dir path too long for a socket address puts sockets under /tmp
        sys.exit(f"expected one model-server socket in {home / 'sockets'}, found {len(sockets)}")
    body = json.dumps({"dataframe_records": X.head(1).to_dict("records")})
    return info, body, sockets[0]


async def measure(info: localctl.BackendInfo, body: str, sock: Path, relay_port: int, relay_pid: int, args) -> None:
    host, port = info.url.split("//", 1)[1].rsplit(":", 1)
    direct_request = request_bytes("/invocations", "model", body, None)
    paths = {  # path: (connect, request, the pid whose CPU time per request is shown)
        "direct": (lambda: asyncio.open_unix_connection(str(sock)), direct_request, None),
        "relay": (lambda: asyncio.open_connection("127.0.0.1", relay_port), direct_request, relay_pid),
        "gateway": (lambda: asyncio.open_connection(host, int(port)),
                    request_bytes("/serving-endpoints/gateway-overhead/invocations", f"{host}:{port}", body,
                                  info.token), info.pid),
    }
    for connect, request, _ in paths.values():
        await closed_loop(connect, request, 4, 1.0)  # warm-up: connections, model caches
    print(f"{args.rounds} paired rounds of {args.duration:g} s per path and concurrency; medians")
    print(f"{'c':>3} {'path':>8} {'QPS':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'CPU µs/req':>11} "
          f"{'÷ direct QPS':>13} {'+ p50 ms':>9}")
    summary = []
    for c in args.concurrency:
        runs: dict[str, list[dict]] = {path: [] for path in paths}
        for round_ in range(args.rounds):
            order = list(paths) if round_ % 2 == 0 else list(paths)[::-1]
            for path in order:
                connect, request, pid = paths[path]
                runs[path].append(await timed_run(connect, request, c, args.duration, pid))
        for path, rs in runs.items():
            m = {k: statistics.median(r[k] for r in rs) for k in ("qps", "p50_ms", "p99_ms", "non_2xx", "cpu_us")}
            ratio = statistics.median(r["qps"] / d["qps"] for r, d in zip(rs, runs["direct"]))
            added = statistics.median(r["p50_ms"] - d["p50_ms"] for r, d in zip(rs, runs["direct"]))
            cpu = "" if path == "direct" else f"{m['cpu_us']:.0f}"
            print(f"{c:>3} {path:>8} {m['qps']:>9.1f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['non_2xx']:>8.0f} "
                  f"{cpu:>11} {ratio:>13.3f} {added:>+9.2f}")
            if path == "gateway":
                summary.append((c, ratio, added))
    print()
    for c, ratio, added in summary:
        verdict = "meets" if ratio >= 0.95 and added <= 0.5 else "misses"
        print(f"c={c}: gateway/direct QPS = {ratio:.2f} (goal >= 0.95), added p50 = {added:+.2f} ms "
              f"(goal <= 0.5 ms): {verdict} the goal")


class PacedChat:
    """A streaming ChatModel (defined here so the benchmark needs nothing from the tests)."""

    def __new__(cls):
        import mlflow.pyfunc
        from mlflow.types.llm import (
            ChatChoice,
            ChatChoiceDelta,
            ChatChunkChoice,
            ChatCompletionChunk,
            ChatCompletionResponse,
            ChatMessage,
        )

        class Paced(mlflow.pyfunc.ChatModel):
            def predict(self, context, messages, params):
                return ChatCompletionResponse(choices=[ChatChoice(index=0, message=ChatMessage(
                    role="assistant", content="ok"))])

            def predict_stream(self, context, messages, params):
                options = params.custom_inputs or {}
                ttft, itl = float(options.get("ttft_ms", 50)) / 1000, float(options.get("itl_ms", 10)) / 1000
                for i in range(int(options.get("tokens", 20))):
                    time.sleep(ttft if i == 0 else itl)
                    yield ChatCompletionChunk(choices=[ChatChunkChoice(index=0, delta=ChatChoiceDelta(
                        role="assistant", content=f"t{i} "))])

        return Paced()


def setup_stream_endpoint(home: Path) -> tuple[localctl.BackendInfo, Path]:
    info, _ = localctl.start(home)
    os.environ.update(info.env())
    import mlflow
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput

    with mlflow.start_run():
        logged = mlflow.pyfunc.log_model(name="model", python_model=PacedChat())
    version = mlflow.register_model(logged.model_uri, "bench.gateway.paced").version
    w = WorkspaceClient(host=info.url, token=info.token)
    w.serving_endpoints.create_and_wait("gateway-stream", config=EndpointCoreConfigInput(
        name="gateway-stream", served_entities=[ServedEntityInput(
            entity_name="bench.gateway.paced", entity_version=str(version),
            min_provisioned_concurrency=16, max_provisioned_concurrency=16)]))
    sockets = list((home / "sockets").glob("*.sock"))
    if len(sockets) != 1:
        sys.exit(f"expected one model-server socket in {home / 'sockets'}, found {len(sockets)}")
    return info, sockets[0]


async def _stream_once(connect, request: bytes) -> tuple[float, list[float]]:
    """(TTFT s, gaps between content chunks s) of one streamed request (chunked transfer encoding)."""
    reader, writer = await connect()
    try:
        began = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise RuntimeError(f"stream answered {head[:12]!r}")
        arrivals = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            if b'"content"' in data:
                arrivals.append(time.perf_counter())
        return arrivals[0] - began, [b - a for a, b in zip(arrivals, arrivals[1:])]
    finally:
        writer.close()


async def measure_stream(info: localctl.BackendInfo, sock: Path, args) -> None:
    host, port = info.url.split("//", 1)[1].rsplit(":", 1)
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True, "custom_inputs": {
        "ttft_ms": args.ttft_ms, "itl_ms": args.itl_ms, "tokens": 20}})
    paths = {
        "direct": (lambda: asyncio.open_unix_connection(str(sock)), request_bytes("/stream", "model", body, None)),
        "gateway": (lambda: asyncio.open_connection(host, int(port)),
                    request_bytes("/serving-endpoints/gateway-stream/invocations", f"{host}:{port}", body,
                                  info.token)),
    }
    ttft: dict[str, list[float]] = {"direct": [], "gateway": []}
    gaps: dict[str, list[float]] = {"direct": [], "gateway": []}
    for connect, request in paths.values():
        await _stream_once(connect, request)  # warm-up
    for _ in range(args.rounds * args.requests):
        for path, (connect, request) in paths.items():
            first, between = await _stream_once(connect, request)
            ttft[path].append(first * 1000)
            gaps[path].extend(g * 1000 for g in between)
    print(f"model: TTFT {args.ttft_ms} ms, inter-token {args.itl_ms} ms, 20 tokens; "
          f"{len(ttft['direct'])} paired streams")
    print(f"{'path':>8} {'TTFT p50':>9} {'TTFT p90':>9} {'gap p50':>8} {'gap p90':>8}")
    for path in ("direct", "gateway"):
        t, g = sorted(ttft[path]), sorted(gaps[path])
        print(f"{path:>8} {statistics.median(t):>9.2f} {t[int(0.9 * len(t))]:>9.2f} "
              f"{statistics.median(g):>8.2f} {g[int(0.9 * len(g))]:>8.2f}")
    added = statistics.median(ttft["gateway"]) - statistics.median(ttft["direct"])
    added_gap = statistics.median(gaps["gateway"]) - statistics.median(gaps["direct"])
    verdict = "meets" if added <= 1.0 else "misses"
    print(f"\nadded TTFT p50 = {added:+.2f} ms (goal <= 1 ms): {verdict} the goal; "
          f"added inter-token gap p50 = {added_gap:+.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per path, round and concurrency")
    parser.add_argument("--rounds", type=int, help="paired rounds (default 8; 3 with --stream)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--stream", action="store_true", help="measure TTFT and inter-token gaps of a stream")
    parser.add_argument("--requests", type=int, default=20, help="streams per round and path (--stream)")
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--itl-ms", type=float, default=10.0)
    parser.add_argument("--relay-to", help=argparse.SUPPRESS)  # the relay process (see start_relay)
    args = parser.parse_args()
    if args.relay_to:
        serve_relay(args.relay_to)
        return
    if args.rounds is None:
        args.rounds = 3 if args.stream else 8
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
        home = Path(tmp) / "home"
        try:
            if args.stream:
                info, sock = setup_stream_endpoint(home)
                asyncio.run(measure_stream(info, sock, args))
            else:
                info, body, sock = setup_endpoint(home)
                relay, relay_port = start_relay(sock)
                try:
                    asyncio.run(measure(info, body, sock, relay_port, relay.pid, args))
                finally:
                    relay.kill()
                    relay.wait()
        finally:
            localctl.stop(home)


if __name__ == "__main__":
    main()
