"""Entry point of the local backend program: `python -m jupyter_serving.local --data-dir D --port P`."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import socket

from jupyter_serving.core.workloads import CLOUDS
from jupyter_serving.datadir import DEFAULT_CLOUD, ensure_home, home_dir


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jupyter_serving.local",
                                     description="jupyter-serving's local Model Serving backend")
    parser.add_argument("--data-dir", help="state, registry, logs and token (default ~/.jupyter-serving)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; loopback by default (anything else exposes your models)")
    parser.add_argument("--cloud", choices=CLOUDS, default=None,
                        help="cloud whose workload types to offer (default: the last one used, else aws)")
    parser.add_argument("--scale-to-zero-idle", type=float, default=1800.0,
                        help="seconds of idleness before a scale-to-zero entity stops (Databricks: ~30 min)")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from jupyter_serving.local.app import create_app

    paths = ensure_home(home_dir(args.data_dir))
    settings_file = paths.home / "cloud"
    cloud = args.cloud or (settings_file.read_text().strip() if settings_file.exists() else DEFAULT_CLOUD)
    settings_file.write_text(cloud)
    # proto must be IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '') else args.host}:{port}"

    def announce() -> None:  # clients find the backend through this file (see localctl.status)
        tmp = paths.server.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "port": port, "pid": os.getpid(), "cloud": cloud}))
        tmp.replace(paths.server)
        logging.getLogger("jupyter_serving.local").info("jupyter-serving local backend listening on %s", url)

    def retract() -> None:
        try:
            if json.loads(paths.server.read_text()).get("pid") == os.getpid():
                paths.server.unlink()
        except (FileNotFoundError, json.JSONDecodeError):
            pass

    app = create_app(paths, cloud, args.scale_to_zero_idle, f"{getpass.getuser()}@localhost",
                     on_ready=announce, on_stop=retract)
    # No proxy sits in front of a loopback backend: X-Forwarded-* headers are not trusted (nor parsed
    # on every request).
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, timeout_keep_alive=120,
                            http="httptools", proxy_headers=False)
    await uvicorn.Server(config).serve(sockets=[sock])


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # uvloop when installed (uvicorn[standard]): a faster loop for the gateway's hot path
        import uvloop

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
