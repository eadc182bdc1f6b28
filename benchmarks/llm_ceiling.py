"""How many streamed tokens per second can the LLM load generator read? Loopback only, bounded in time.

A trivial streaming server (tests/fake_sse_server.py, started here: a raw asyncio server that answers
every POST with a whole `--tokens`-token `chat.completion.chunk` stream, pre-built, no delay) is read
with the same number of connections, in interleaved runs, by:
- ours: `bench.llm_runner.llm_sweep`, closed loop (StreamConnection: httptools, one timestamp per read,
  JSON per event, the content test of `core.tokens`);
- the reference: a raw asyncio streams client (asyncio.open_connection, the chunked framing read with
  readuntil / readexactly, each event's JSON loaded and its content checked): the least a client that
  times every chunk must do, with a coroutine per request;
- aiohttp as vLLM's benchmark client reads it (iter_any, split on blank lines, json.loads), if installed.
The server runs on core 0 and the clients on core 1 (with at least 2 cores). Printed: tokens/s of each
(median of the runs) and ours ÷ the reference.

    python benchmarks/llm_ceiling.py [--concurrency 8] [--tokens 256] [--duration 3] [--runs 3]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_serving.bench.llm_client import chat_body, synthetic_prompts  # noqa: E402
from jupyter_serving.bench.llm_runner import llm_sweep  # noqa: E402
from jupyter_serving.bench.runner import new_event_loop  # noqa: E402

SERVER_CORE, CLIENT_CORE = 0, 1
WARMUP_S = 0.5
PATH = "/serving-endpoints/fake/invocations"
OURS, REFERENCE, AIOHTTP = "ours (llm_runner)", "reference (raw asyncio streams)", "aiohttp (vLLM's client)"


def start_server() -> tuple[subprocess.Popen, int]:
    pin = (lambda: os.sched_setaffinity(0, {SERVER_CORE})) if os.cpu_count() >= 2 else None
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_sse_server.py"), "--port", "0"],
                               stdout=subprocess.PIPE, text=True, preexec_fn=pin, start_new_session=True)
    line = process.stdout.readline()
    if not line.startswith("LISTENING"):
        stop_server(process)
        raise SystemExit(f"the fake server did not start: {line!r}")
    return process, int(line.split()[1])


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def body(tokens: int) -> bytes:
    return json.dumps(chat_body(synthetic_prompts(8, 1)[0], tokens)).encode()


def ours(port: int, concurrency: int, tokens: int, duration: float) -> float:
    frame = llm_sweep(f"http://127.0.0.1:{port}", None, "fake", concurrency=[concurrency], prompt_tokens=8,
                      max_tokens=tokens, duration=duration, warmup=WARMUP_S)
    return float(frame["output_tokens_per_s"].iloc[0])


class Window:
    """Tokens read (each with the time it arrived) inside [start + warm-up, + duration)."""

    def __init__(self, duration: float):
        self.start = time.perf_counter() + WARMUP_S
        self.end = self.start + duration
        self.tokens = 0

    def count(self, when: float) -> None:
        if self.start <= when < self.end:
            self.tokens += 1

    def rate(self) -> float:
        return self.tokens / (self.end - self.start)


async def _raw_worker(port: int, request: bytes, window: Window) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while time.perf_counter() < window.end:
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            buffer = b""
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                buffer += (await reader.readexactly(size + 2))[:-2]
                now = time.perf_counter()
                while (end := buffer.find(b"\n\n")) >= 0:
                    data, buffer = buffer[6:end], buffer[end + 2:]
                    if data != b"[DONE]" and (json.loads(data).get("choices") or [{}])[0].get("delta", {}).get("content"):
                        window.count(now)
            await reader.readexactly(2)
    finally:
        writer.close()


def reference(port: int, concurrency: int, tokens: int, duration: float) -> float:
    data = body(tokens)
    request = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Accept: text/event-stream\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data

    async def run() -> float:
        window = Window(duration)
        await asyncio.gather(*(_raw_worker(port, request, window) for _ in range(concurrency)))
        return window.rate()

    return _in_loop(run())


def with_aiohttp(port: int, concurrency: int, tokens: int, duration: float) -> float:
    import aiohttp

    data = body(tokens)

    async def worker(session, window: Window) -> None:
        while time.perf_counter() < window.end:
            async with session.post(f"http://127.0.0.1:{port}{PATH}", data=data,
                                    headers={"Content-Type": "application/json"}) as response:
                buffer = ""
                async for piece in response.content.iter_any():
                    now = time.perf_counter()
                    buffer += piece.decode()
                    while "\n\n" in buffer:
                        message, buffer = buffer.split("\n\n", 1)
                        chunk = message.strip().removeprefix("data: ")
                        if chunk and chunk != "[DONE]" and (json.loads(chunk).get("choices") or [{}])[0].get(
                                "delta", {}).get("content"):
                            window.count(now)

    async def run() -> float:
        window = Window(duration)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            await asyncio.gather(*(worker(session, window) for _ in range(concurrency)))
        return window.rate()

    return _in_loop(run())


def _in_loop(coro) -> float:
    loop = new_event_loop()  # uvloop when installed, as ours uses
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per streamed answer")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each client")
    args = parser.parse_args()
    if not 0 < args.duration <= 30 or not 1 <= args.runs <= 10:
        raise SystemExit("--duration must be within (0, 30] s and --runs within 1..10 (bounded in time)")
    if os.cpu_count() >= 2:
        os.sched_setaffinity(0, {CLIENT_CORE})
    clients = {OURS: ours, REFERENCE: reference}
    try:
        import aiohttp  # noqa: F401

        clients[AIOHTTP] = with_aiohttp
    except ImportError:
        pass
    server, port = start_server()
    rates: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for _ in range(args.runs):
            for name, client in clients.items():
                rates[name].append(client(port, args.concurrency, args.tokens, args.duration))
    finally:
        stop_server(server)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"{args.concurrency} connections, {args.tokens}-token answers, {args.runs} × {args.duration:g} s each; "
          f"load average {open('/proc/loadavg').read().split()[0]}")
    for name, values in rates.items():
        print(f"  {name:34s} {medians[name]:>10,.0f} tokens/s  (runs: {', '.join(f'{v:,.0f}' for v in values)})")
    print(f"ours ÷ reference: {medians[OURS] / medians[REFERENCE]:.2f}")
    if AIOHTTP in medians:
        print(f"ours ÷ aiohttp: {medians[OURS] / medians[AIOHTTP]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
