"""`jupyter-serving` command line: manage the embedded local backend."""
from __future__ import annotations

import argparse
import getpass
import json
import shlex
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from jupyter_serving.client import local_secrets, localctl
from jupyter_serving.core.rules import SECRET_NAME_RE
from jupyter_serving.core.workloads import CLOUDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter-serving", description="Model serving, driven from the notebook.")
    sub = parser.add_subparsers(dest="group", required=True)
    local = sub.add_parser("local", help="the embedded local backend")
    actions = local.add_subparsers(dest="action", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", help="data dir (default $JUPYTER_SERVING_HOME or ~/.jupyter-serving)")
        return p

    start = with_data_dir(actions.add_parser("start", help="start the backend in the background"))
    start.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    start.add_argument("--cloud", choices=CLOUDS, help="cloud whose workload types to offer (default aws)")
    start.add_argument("--scale-to-zero-idle", type=float, help="idle seconds before scale to zero (1800)")
    start.add_argument("--foreground", action="store_true", help="run in this terminal until Ctrl-C")
    with_data_dir(actions.add_parser("stop", help="stop the backend and its model servers"))
    with_data_dir(actions.add_parser("status", help="is the backend running, and where"))
    with_data_dir(actions.add_parser("env", help="print export lines for the official clients and MLflow"))
    token = with_data_dir(actions.add_parser("token", help="create a token for another (simulated) user"))
    token.add_argument("--user", required=True, help="user name, e.g. alice@example.com")
    _secrets_parser(actions, with_data_dir)
    return parser


def _secrets_parser(actions, with_data_dir) -> None:
    group = actions.add_parser("secrets", help="the local secret store, e.g. API keys of external models "
                                                "(values are never shown)")
    verbs = group.add_subparsers(dest="verb", required=True)
    put = with_data_dir(verbs.add_parser(
        "put", help="store a secret, creating its scope; the value is read from stdin, a hidden prompt or "
                    "--value-file (never from the command line)"))
    put.add_argument("scope")
    put.add_argument("key")
    put.add_argument("--value-file", help="read the value from this file (one trailing newline is dropped)")
    listing = with_data_dir(verbs.add_parser("list", help="list the keys of a scope (or of every scope)"))
    listing.add_argument("scope", nargs="?")
    delete = with_data_dir(verbs.add_parser("delete", help="delete a secret"))
    delete.add_argument("scope")
    delete.add_argument("key")


class _Refused(Exception):
    """A `secrets` command that cannot go on; the message is one line for stderr."""


def _secret_value(args) -> str:
    """The value to store, from --value-file, a hidden prompt (a terminal) or stdin; never echoed."""
    if args.value_file:
        try:
            text = Path(args.value_file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise _Refused(f"{args.value_file} is not UTF-8 text.") from None
        except OSError as exc:
            raise _Refused(f"cannot read {args.value_file}: {exc.strerror or type(exc).__name__}.") from None
    elif sys.stdin.isatty():
        try:
            text = getpass.getpass(f"Value of secret {args.scope}/{args.key} (not shown): ")
        except EOFError:
            text = ""
    else:
        text = sys.stdin.read()
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not text:
        raise _Refused("the value is empty; nothing was stored.")
    return text


def _secrets_command(args, info: localctl.BackendInfo) -> None:
    for name in (args.scope, getattr(args, "key", None)):
        if name is not None and not SECRET_NAME_RE.fullmatch(name):
            raise _Refused(f"{name[:130]!r} is not a valid scope or key name: use 1 to 128 letters, digits, '.', "
                           "'-' and '_'.")
    if args.verb == "put":
        created = local_secrets.put(info, args.scope, args.key, _secret_value(args))
        print(f"Stored secret {args.scope}/{args.key}" + (f" (created scope {args.scope})." if created else "."))
    elif args.verb == "delete":
        local_secrets.delete(info, args.scope, args.key)
        print(f"Deleted secret {args.scope}/{args.key}.")
    else:
        found = local_secrets.keys(info, args.scope)
        if not found:
            print("No secret scopes.")
        for scope, key, updated in found:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(updated / 1000)) if updated else ""
            print(f"{scope}/{key}\tupdated {when}" if key else f"{scope}/\t(no secrets)")


def _secrets(args) -> int:
    info = _running_or_exit(args.data_dir)
    try:
        _secrets_command(args, info)
    except (_Refused, local_secrets.SecretsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nerror: interrupted; nothing was stored.", file=sys.stderr)
        return 130
    return 0


def _running_or_exit(data_dir) -> localctl.BackendInfo:
    info = localctl.status(data_dir)
    if info is None:
        print("The local backend is not running; start it with: jupyter-serving local start", file=sys.stderr)
        raise SystemExit(1)
    return info


def _status(data_dir) -> int:
    info = localctl.status(data_dir)
    if info is None:
        print("The local backend is not running.")
        return 1
    print(f"Running at {info.url} (pid {info.pid}, cloud {info.cloud}, data dir {info.home})")
    unreadable = localctl.unreadable_rows(info)
    if unreadable:
        print(f"{unreadable} endpoint row{'s' if unreadable > 1 else ''} could not be read: see "
              f"{info.home / 'logs' / 'backend.log'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.action == "start":
        extra = ["--scale-to-zero-idle", str(args.scale_to_zero_idle)] if args.scale_to_zero_idle else []
        if args.foreground:
            from jupyter_serving.local.__main__ import main as serve

            serve(["--port", str(args.port)] + (["--data-dir", args.data_dir] if args.data_dir else [])
                  + (["--cloud", args.cloud] if args.cloud else []) + extra)
            return 0
        try:
            info, started = localctl.start(args.data_dir, port=args.port, cloud=args.cloud, extra_args=extra)
        except localctl.LocalBackendError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        verb = "Started" if started else "Already running:"
        print(f"{verb} local backend at {info.url} (pid {info.pid}, cloud {info.cloud}, data dir {info.home})")
        if not started and args.cloud and args.cloud != info.cloud:
            print(f"note: it runs with cloud {info.cloud}; stop it first to change the cloud", file=sys.stderr)
        return 0
    if args.action == "stop":
        stopped = localctl.stop(args.data_dir)
        print("Stopped the local backend." if stopped else "The local backend was not running.")
        return 0
    if args.action == "status":
        return _status(args.data_dir)
    if args.action == "secrets":
        return _secrets(args)
    if args.action == "env":
        info = _running_or_exit(args.data_dir)
        for key, value in info.env().items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if args.action == "token":
        info = _running_or_exit(args.data_dir)
        request = urllib.request.Request(
            info.url + "/api/2.0/token-management/on-behalf-of/tokens", method="POST",
            data=json.dumps({"application_id": args.user, "comment": "jupyter-serving local token"}).encode(),
            headers={"Authorization": f"Bearer {info.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                print(json.loads(resp.read())["token_value"])
        except urllib.error.HTTPError as exc:
            print(f"error: {json.loads(exc.read()).get('message', exc)}", file=sys.stderr)
            return 1
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
