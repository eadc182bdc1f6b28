"""IPython magics: `%serve <subcommand>` and `%%query` / `%query`, thin parsers over `api`.

Loading stays light: this module imports IPython, traitlets and the standard library only; the API
(databricks-sdk, pandas) is imported on first use, and mlflow never by the magics.

Errors: an expected failure (`ServingError`) is shown as one line without a traceback (an exact
`UsageError`, the only type IPython prints without one). `%config ServeMagics.short_errors = False`
shows tracebacks; `%config ServeMagics.raise_errors = True` raises the error as a real exception so
that nbval/papermill fail the cell (a UsageError is only printed to stderr).
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, needs_local_scope, no_var_expand
from traitlets import Bool, Float, Unicode
from traitlets.config.configurable import Configurable

from .errors import InvalidInputError, ServingError

SUBCOMMANDS: dict[str, str] = {
    "connect": "choose the backend: `connect local`, `connect --profile NAME`, `connect --host URL`",
    "create": "create an endpoint: `create NAME --model M [--version V] ...`",
    "list": "all endpoints as a DataFrame",
    "status": "an endpoint's state, entities, traffic and pending config (`--watch` to follow it)",
    "update": "change a served entity: `update NAME --entity E --version V ...`",
    "traffic": "split traffic: `traffic NAME E1=80 E2=20` (no split: sliders)",
    "stop": "stop an endpoint (it refuses queries until started)",
    "start": "start a stopped endpoint",
    "delete": "delete an endpoint: `delete NAME --yes`",
    "logs": "model server logs: `logs NAME [ENTITY] [--build] [--tail N]`",
    "schema": "the request format, as a %%query template",
    "permissions": "who may do what: `permissions NAME [--grant USER LEVEL]`",
    "tags": "show or change tags: `tags NAME [k=v ...] [--remove k ...]`",
    "ui": "a form to create an endpoint (model, GPU workload, concurrency, traffic)",
    "bench": "load-test an endpoint and size its concurrency: `bench NAME [--target-qps Q] [--concurrency 1,2,4,8]`",
    "help": "this help, or `help SUBCOMMAND`",
}
#: Subcommands whose first positional argument is an endpoint name (for completion).
NAME_SUBCOMMANDS = ("status", "update", "traffic", "stop", "start", "delete", "logs", "schema",
                    "permissions", "tags", "bench")

_ENTITY_OPTS = {"--model": True, "-m": True, "--version": True, "--entity-name": True,
                "--workload-type": True, "--workload-size": True, "--min-concurrency": True,
                "--max-concurrency": True, "--scale-to-zero": False}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MagicUsageError(InvalidInputError):
    """Bad magic arguments (argparse), reported like every other expected error."""


class _HelpShown(Exception):
    """argparse printed help (-h): stop quietly."""


class _Parser(argparse.ArgumentParser):
    """argparse that never exits the kernel: errors raise MagicUsageError, -h raises _HelpShown."""

    def __init__(self, sub: str, **kwargs):
        self.sub = "create" if sub == "_entity" else sub
        prog = {"query": "%%query", "_entity": "%serve create --model"}.get(sub, f"%serve {sub}")
        super().__init__(prog=prog, allow_abbrev=False, **kwargs)

    def error(self, message):  # noqa: D401 - argparse API
        where = self.prog
        raise MagicUsageError(f"{where}: {message}",
                              f"`%serve help {self.sub}` shows the usage." if self.sub != "query"
                              else "Usage: %%query NAME [--entity E] [-o VAR] [--raw] [--timeout S].")

    def exit(self, status=0, message=None):
        if message:
            print(message, file=sys.stderr)
        raise _HelpShown()


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line, posix=True)
    except ValueError as err:
        raise MagicUsageError(f"Cannot parse the arguments ({err})", "Close every quote you open.") from None


def _in_kernel(shell: Any) -> bool:
    return getattr(shell, "kernel", None) is not None


class _Progress:
    """Live progress while waiting: updated in place in a kernel, printed lines elsewhere."""

    def __init__(self, shell: Any, verb: str):
        self.shell = shell
        self.verb = verb
        self.handle = None
        self.last_text = ""
        self.last_time = 0.0

    def __call__(self, status, elapsed: float) -> None:
        text = f"{self.verb} {status.progress_line(elapsed)}"
        state_part = text.rsplit(" · ", 1)[0]
        now = time.monotonic()
        if _in_kernel(self.shell):
            from IPython.display import display

            if self.handle is None:
                self.handle = display({"text/plain": text}, raw=True, display_id=True)
            elif text != self.last_text:
                self.handle.update({"text/plain": text}, raw=True)
        elif state_part != self.last_text.rsplit(" · ", 1)[0] or now - self.last_time >= 5.0:
            print(text, flush=True)
            self.last_time = now
        self.last_text = text


@magics_class
class ServeMagics(Magics, Configurable):
    """`%serve` (endpoints) and `%%query` (queries). Configure with `%config ServeMagics.<trait>`."""

    short_errors = Bool(True,
                        help="Show expected errors as one line without a traceback.").tag(config=True)
    raise_errors = Bool(False,
                        help="Raise expected errors as exceptions so that nbval/papermill fail the cell."
                        ).tag(config=True)
    wait_timeout = Float(1200.0, help="Seconds to wait for a deployment.").tag(config=True)
    query_timeout = Float(60.0, help="Default seconds to wait for a query answer.").tag(config=True)
    data_dir = Unicode(None, allow_none=True,
                       help="Data dir of the local backend (default ~/.jupyter-serving).").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        Configurable.__init__(self, config=shell.config if shell is not None else None)
        Magics.__init__(self, shell=shell, **kwargs)
        if shell is not None and self not in shell.configurables:
            shell.configurables.append(self)
        self._parsers: dict[str, _Parser] = {}
        self._names_cache: tuple[float, list[str]] = (0.0, [])
        self._entities_cache: dict[str, tuple[float, list[str]]] = {}

    # ------------------------------------------------------------------------------------------
    # plumbing

    def _client(self):
        from . import api

        client = api.get_client() if self.data_dir is None else (api.current_client() or api.connect(
            data_dir=self.data_dir))
        target = client.target
        if client.is_local and target is not None and target.kind == "local":
            # The local backend is started on demand: if it went away (stopped, machine slept),
            # start it again instead of failing on a dead port.
            from . import localctl

            info = localctl.status(target.data_dir)
            if info is None or info.url != client.host:
                client = api.connect(local=True, data_dir=target.data_dir)
        client.query_timeout = float(self.query_timeout)
        return client

    def _run(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except _HelpShown:
            return None
        except ServingError as err:
            return self._fail(err)

    def _fail(self, err: ServingError):
        if self.raise_errors:
            if self.short_errors:
                err._render_traceback_ = lambda: [f"{type(err).__name__}: {err}"]  # type: ignore[attr-defined]
            raise err
        if self.short_errors:
            raise UsageError(str(err)) from None
        raise err

    def _ns(self, local_ns: dict | None = None) -> dict:
        ns = dict(self.shell.user_ns) if self.shell is not None else {}
        if local_ns:
            ns.update(local_ns)
        return ns

    # ------------------------------------------------------------------------------------------
    # %serve

    @no_var_expand
    @needs_local_scope
    @line_magic("serve")
    def serve(self, line: str = "", local_ns: dict | None = None):
        """Manage serving endpoints. `%serve help` lists the subcommands."""
        return self._run(lambda: self._serve(line, local_ns))

    def _serve(self, line: str, local_ns: dict | None):
        words = _split(line)
        if not words:
            self._print_help()
            return None
        sub, args = words[0], words[1:]
        if sub in ("-h", "--help"):
            self._print_help()
            return None
        if sub not in SUBCOMMANDS:
            close = difflib.get_close_matches(sub, list(SUBCOMMANDS), n=1)
            raise MagicUsageError(f"%serve has no subcommand '{sub}'",
                                  (f"Did you mean `%serve {close[0]}`? " if close else "")
                                  + "`%serve help` lists the subcommands.")
        handler = getattr(self, f"_cmd_{sub}")
        return handler(args, self._ns(local_ns))

    def _print_help(self, sub: str | None = None) -> None:
        if sub:
            if sub not in SUBCOMMANDS:
                raise MagicUsageError(f"%serve has no subcommand '{sub}'", "`%serve help` lists the subcommands.")
            if sub == "help":
                print("%serve help [SUBCOMMAND]: list the subcommands, or show one's options.")
                return
            self._parser(sub).print_help(sys.stdout)
            return
        width = max(len(s) for s in SUBCOMMANDS)
        lines = ["%serve SUBCOMMAND ... (model serving endpoints)"]
        lines += [f"  {s.ljust(width)}  {d}" for s, d in SUBCOMMANDS.items()]
        lines += ["%%query NAME [--entity E] [-o VAR] [--raw] [--timeout S]   query with a JSON/CSV/$var body",
                  "%query NAME $df                                           the same on one line",
                  "Settings: %config ServeMagics.short_errors / raise_errors / query_timeout / wait_timeout"]
        print("\n".join(lines))

    # parsers ----------------------------------------------------------------------------------
    def _parser(self, sub: str) -> _Parser:
        if sub in self._parsers:
            return self._parsers[sub]
        p = _Parser(sub, description=SUBCOMMANDS.get(sub, ""))
        if sub == "connect":
            p.add_argument("where", nargs="?", choices=["local"], help="`local`: the embedded local backend")
            p.add_argument("--profile", help="a profile of ~/.databrickscfg")
            p.add_argument("--host", help="workspace URL (token from DATABRICKS_TOKEN or a matching profile)")
            p.add_argument("--data-dir", help="data dir of the local backend")
        elif sub == "create":
            p.description = (
                "Create an endpoint. Entity options follow each --model: "
                "`create NAME --model M --version 1 [--workload-size Small] [--model M2 --version 2 ...] "
                "[--traffic E1=80 E2=20]`. Entity options: --model/-m, --version, --entity-name, "
                "--workload-type, --workload-size, --min-concurrency, --max-concurrency, --scale-to-zero.")
            p.add_argument("name")
            p.add_argument("--traffic", nargs="+", metavar="E=P", help="traffic split between entities")
            p.add_argument("--tag", action="append", default=[], metavar="K=V", help="a tag (repeatable)")
            p.add_argument("--route-optimized", action="store_true")
            p.add_argument("--description")
            p.add_argument("--from-json", metavar="FILE_OR_$VAR", help="a full config (JSON file or variable)")
            p.add_argument("--no-wait", action="store_true", help="return without waiting for READY")
            p.add_argument("--timeout", type=float, help="seconds to wait (default ServeMagics.wait_timeout)")
        elif sub == "_entity":
            p.add_argument("--model", "-m", required=True)
            p.add_argument("--version")
            p.add_argument("--entity-name")
            p.add_argument("--workload-type")
            p.add_argument("--workload-size")
            p.add_argument("--min-concurrency", type=int)
            p.add_argument("--max-concurrency", type=int)
            p.add_argument("--scale-to-zero", action="store_true", default=None)
        elif sub == "list":
            p.add_argument("--names", action="store_true", help="only the names")
        elif sub == "status":
            p.add_argument("name")
            p.add_argument("--watch", action="store_true", help="refresh until the endpoint settles")
            p.add_argument("--timeout", type=float)
        elif sub == "update":
            p.add_argument("name")
            p.add_argument("--entity", help="the served entity to change (optional if there is one)")
            p.add_argument("--model", "-m", help="serve another model in this entity")
            p.add_argument("--version")
            p.add_argument("--workload-type")
            p.add_argument("--workload-size")
            p.add_argument("--min-concurrency", type=int)
            p.add_argument("--max-concurrency", type=int)
            p.add_argument("--scale-to-zero", action=argparse.BooleanOptionalAction, default=None)
            p.add_argument("--traffic", nargs="+", metavar="E=P")
            p.add_argument("--from-json", metavar="FILE_OR_$VAR", help="a full core config")
            p.add_argument("--no-wait", action="store_true")
            p.add_argument("--timeout", type=float)
        elif sub == "traffic":
            p.add_argument("name")
            p.add_argument("routes", nargs="*", metavar="E=P", help="the new split; none opens the traffic editor")
            p.add_argument("--no-wait", action="store_true")
        elif sub in ("stop", "start"):
            p.add_argument("name")
            p.add_argument("--no-wait", action="store_true")
        elif sub == "delete":
            p.add_argument("name")
            p.add_argument("--yes", action="store_true", help="confirm: deleting cannot be undone")
        elif sub == "logs":
            p.add_argument("name")
            p.add_argument("entity", nargs="?")
            p.add_argument("--build", action="store_true", help="container build logs")
            p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
        elif sub == "schema":
            p.add_argument("name")
            p.add_argument("--entity")
            p.add_argument("--openapi", action="store_true", help="the raw OpenAPI document")
        elif sub == "permissions":
            p.add_argument("name")
            p.add_argument("--grant", nargs=2, metavar=("PRINCIPAL", "LEVEL"),
                           help="user e-mail, group:NAME or sp:ID; CAN_MANAGE, CAN_QUERY or CAN_VIEW")
        elif sub == "tags":
            p.add_argument("name")
            p.add_argument("set", nargs="*", metavar="K=V")
            p.add_argument("--remove", nargs="+", default=[], metavar="K")
        elif sub == "ui":
            p.add_argument("name", nargs="?", help="endpoint name (default: from the model)")
            p.add_argument("--model", "-m", help="preselect a registered model")
            p.add_argument("--version", help="preselect its version")
            p.add_argument("--workload-type", help="preselect a workload type")
        elif sub == "bench":
            from .bench.notebook import add_bench_arguments

            add_bench_arguments(p)
        elif sub == "help":
            p.add_argument("subcommand", nargs="?")
        elif sub == "query":
            p.add_argument("name")
            p.add_argument("--entity", help="query one served entity, ignoring the traffic split")
            p.add_argument("-o", "--output", metavar="VAR", help="store the DataFrame in VAR, show nothing")
            p.add_argument("--raw", action="store_true", help="the JSON response instead of a DataFrame")
            p.add_argument("--timeout", type=float, help="seconds to wait for the answer")
        self._parsers[sub] = p
        return p

    def _parse(self, sub: str, args: list[str]) -> argparse.Namespace:
        return self._parser(sub).parse_args(args)

    # helpers ----------------------------------------------------------------------------------
    def _load_json_arg(self, ref: str, ns: dict) -> dict:
        """--from-json FILE or $VAR (a dict, or a JSON string)."""
        if ref.startswith("$"):
            var = ref[1:]
            if var not in ns:
                raise InvalidInputError(f"Unknown variable {ref}", f"Define {var} in the notebook first.")
            value = ns[var]
            if isinstance(value, dict):
                return value
            if isinstance(value, str):
                text, what = value, f"variable {ref}"
            else:
                raise InvalidInputError(f"{ref} is a {type(value).__name__}", "Use a dict or a JSON string.")
        else:
            path = Path(ref).expanduser()
            if not path.is_file():
                raise InvalidInputError(f"No such file '{ref}'", "Give the path of a JSON file, or $var.")
            text, what = path.read_text(), f"file {ref}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidInputError(f"Malformed JSON in {what} at line {err.lineno}, column {err.colno}: {err.msg}",
                                    "Fix the JSON (double quotes, no trailing commas).") from None
        if not isinstance(value, dict):
            raise InvalidInputError(f"The JSON in {what} is not an object", 'e.g. {"served_entities": [...]}.')
        return value

    def _wait_kwargs(self, verb: str, timeout: float | None) -> dict:
        return {"on_progress": _Progress(self.shell, verb),
                "timeout": float(timeout if timeout is not None else self.wait_timeout)}

    def _interrupted(self, name: str, what: str = "deploying") -> None:
        print(f"Stopped waiting; endpoint '{name}' keeps {what}. Follow it with `%serve status {name} --watch`.")

    # subcommands ------------------------------------------------------------------------------
    def _cmd_help(self, args: list[str], ns: dict):
        opts = self._parse("help", args)
        self._print_help(opts.subcommand)

    def _cmd_connect(self, args: list[str], ns: dict):
        from . import api

        opts = self._parse("connect", args)
        if not (opts.where or opts.profile or opts.host):
            client = api.current_client()
            if client is not None:
                print(f"Connected to {client.backend}.")
            else:
                from .connection import describe_default

                print(f"Not connected yet; the first command will use {describe_default(opts.data_dir or self.data_dir)}.")
            return None
        client = api.connect(profile=opts.profile, host=opts.host, local=opts.where == "local",
                             data_dir=opts.data_dir or self.data_dir, query_timeout=self.query_timeout)
        self._names_cache = (0.0, [])
        print(f"Connected to {client.backend}.")
        return None

    def _split_create_args(self, args: list[str]) -> tuple[list[str], list[list[str]]]:
        head: list[str] = []
        groups: list[list[str]] = []
        i = 0
        while i < len(args):
            tok = args[i]
            opt = tok.split("=", 1)[0] if tok.startswith("--") else tok
            if opt in _ENTITY_OPTS:
                if opt in ("--model", "-m"):
                    groups.append([])
                elif not groups:
                    raise MagicUsageError(f"%serve create: {opt} must follow a --model",
                                          "Write --model M --version V ... for each served entity.")
                groups[-1].append(tok)
                if _ENTITY_OPTS[opt] and "=" not in tok:
                    if i + 1 >= len(args):
                        raise MagicUsageError(f"%serve create: {opt} needs a value", "`%serve help create`.")
                    i += 1
                    groups[-1].append(args[i])
            else:
                head.append(tok)
            i += 1
        return head, groups

    def _cmd_create(self, args: list[str], ns: dict):
        from . import api
        from .arguments import parse_tags, parse_traffic

        head, groups = self._split_create_args(args)
        opts = self._parse("create", head)
        entities = [self._parse("_entity", g) for g in groups]
        client = self._client()
        kwargs: dict[str, Any] = {
            "traffic": parse_traffic(opts.traffic) if opts.traffic else None,
            "tags": parse_tags(opts.tag) if opts.tag else None,
            "route_optimized": True if opts.route_optimized else None,
            "description": opts.description,
            "wait": not opts.no_wait,
        }
        config = self._load_json_arg(opts.from_json, ns) if opts.from_json else None
        if config is not None and entities:
            raise InvalidInputError("Give either --from-json or --model, not both",
                                    "Put every served entity in the JSON config, or use --model groups.")
        if len(entities) == 1:
            e = entities[0]
            kwargs.update(model=e.model, version=e.version, entity_name=e.entity_name,
                          workload_type=e.workload_type, workload_size=e.workload_size,
                          min_concurrency=e.min_concurrency, max_concurrency=e.max_concurrency,
                          scale_to_zero=bool(e.scale_to_zero))
        elif len(entities) > 1:
            config = {"served_entities": [api.served_entity(
                e.model, e.version if e.version else client.latest_version(e.model), name=e.entity_name,
                workload_type=e.workload_type, workload_size=e.workload_size, min_concurrency=e.min_concurrency,
                max_concurrency=e.max_concurrency, scale_to_zero=e.scale_to_zero) for e in entities]}
        if not opts.no_wait:
            kwargs.update(self._wait_kwargs("Creating", opts.timeout))
        try:
            status = client.create(opts.name, config, **kwargs)
        except KeyboardInterrupt:
            self._interrupted(opts.name)
            return None
        self._names_cache = (0.0, [])
        if opts.no_wait:
            print(f"Creating endpoint '{opts.name}'; follow it with `%serve status {opts.name} --watch`.")
        return status

    def _cmd_list(self, args: list[str], ns: dict):
        opts = self._parse("list", args)
        client = self._client()
        if opts.names:
            names = client.names()
            self._names_cache = (time.monotonic(), names)
            return names
        frame = client.list()
        self._names_cache = (time.monotonic(), list(frame["name"]))
        return frame

    def _cmd_status(self, args: list[str], ns: dict):
        opts = self._parse("status", args)
        client = self._client()
        status = client.get(opts.name)
        if not opts.watch or status.is_settled:
            return status
        timeout = float(opts.timeout if opts.timeout is not None else self.wait_timeout)
        if _in_kernel(self.shell):  # a panel that polls in the background: the kernel stays free
            from .widgets import status_panel

            return status_panel(opts.name, client, initial=status, timeout=timeout)
        try:
            return client.wait(opts.name, timeout=timeout, on_progress=_Progress(self.shell, "Watching"),
                               raise_on_failure=False)
        except KeyboardInterrupt:
            print("Stopped watching.")
            return None

    def _cmd_update(self, args: list[str], ns: dict):
        from .arguments import parse_traffic

        opts = self._parse("update", args)
        client = self._client()
        config = self._load_json_arg(opts.from_json, ns) if opts.from_json else None
        kwargs: dict[str, Any] = dict(
            entity=opts.entity, model=opts.model, version=opts.version, workload_type=opts.workload_type,
            workload_size=opts.workload_size, min_concurrency=opts.min_concurrency,
            max_concurrency=opts.max_concurrency, scale_to_zero=opts.scale_to_zero,
            traffic=parse_traffic(opts.traffic) if opts.traffic else None, config=config, wait=not opts.no_wait)
        if not opts.no_wait:
            kwargs.update(self._wait_kwargs("Updating", opts.timeout))
        try:
            status = client.update_config(opts.name, **kwargs)
        except KeyboardInterrupt:
            self._interrupted(opts.name, "updating")
            return None
        if opts.no_wait:
            print(f"Updating endpoint '{opts.name}'; follow it with `%serve status {opts.name} --watch`.")
        return status

    def _cmd_traffic(self, args: list[str], ns: dict):
        from .arguments import parse_traffic

        opts = self._parse("traffic", args)
        client = self._client()
        if not opts.routes:
            from .widgets import traffic_editor

            return traffic_editor(opts.name, client)
        routes = parse_traffic(opts.routes)
        kwargs: dict[str, Any] = {"wait": not opts.no_wait}
        if not opts.no_wait:
            kwargs.update(self._wait_kwargs("Updating", None))
        try:
            return client.set_traffic(opts.name, routes, **kwargs)
        except KeyboardInterrupt:
            self._interrupted(opts.name, "updating")
            return None

    def _cmd_stop(self, args: list[str], ns: dict):
        opts = self._parse("stop", args)
        client = self._client()
        before = client.get(opts.name)
        if before.is_stopped:
            print(f"Endpoint '{opts.name}' is already stopped.")
            return before
        kwargs: dict[str, Any] = {"wait": not opts.no_wait}
        if not opts.no_wait:
            kwargs.update(self._wait_kwargs("Stopping", None))
        try:
            return client.stop(opts.name, **kwargs)
        except KeyboardInterrupt:
            self._interrupted(opts.name, "stopping")
            return None

    def _cmd_start(self, args: list[str], ns: dict):
        opts = self._parse("start", args)
        client = self._client()
        before = client.get(opts.name)
        if not before.is_stopped:
            print(f"Endpoint '{opts.name}' is not stopped; nothing to start.")
            return before
        kwargs: dict[str, Any] = {"wait": not opts.no_wait}
        if not opts.no_wait:
            kwargs.update(self._wait_kwargs("Starting", None))
        try:
            return client.start(opts.name, **kwargs)
        except KeyboardInterrupt:
            self._interrupted(opts.name, "starting")
            return None

    def _cmd_delete(self, args: list[str], ns: dict):
        from .api import _validate_name

        opts = self._parse("delete", args)
        _validate_name(opts.name)
        if not opts.yes:
            raise InvalidInputError(f"Deleting endpoint '{opts.name}' cannot be undone; nothing was deleted",
                                    f"Confirm with `%serve delete {opts.name} --yes`.")
        self._client().delete(opts.name)
        self._names_cache = (0.0, [])
        print(f"Deleted endpoint '{opts.name}'.")
        return None

    def _cmd_logs(self, args: list[str], ns: dict):
        opts = self._parse("logs", args)
        if opts.tail is not None and opts.tail <= 0:
            raise InvalidInputError(f"--tail must be a positive number of lines, got {opts.tail}", "e.g. --tail 50.")
        client = self._client()
        fn = client.build_logs if opts.build else client.logs
        text = fn(opts.name, opts.entity, tail=opts.tail)
        print(text if text.strip() else f"(no {'build ' if opts.build else ''}logs yet)")
        return None

    def _cmd_schema(self, args: list[str], ns: dict):
        from .query_body import compact_json

        opts = self._parse("schema", args)
        client = self._client()
        if opts.openapi:
            return client.openapi(opts.name)
        template = client.request_template(opts.name, opts.entity)
        head = f"%%query {opts.name}" + (f" --entity {opts.entity}" if opts.entity else "")
        print(f"# Request template for '{opts.name}' (fill in the values, then run it):")
        print(head)
        print(compact_json(template))
        return None

    def _cmd_permissions(self, args: list[str], ns: dict):
        opts = self._parse("permissions", args)
        client = self._client()
        if opts.grant:
            principal, level = opts.grant
            return client.grant(opts.name, principal, level)
        return client.permissions(opts.name)

    def _cmd_ui(self, args: list[str], ns: dict):
        from .widgets import create_form

        opts = self._parse("ui", args)
        return create_form(self._client(), model=opts.model, version=opts.version, name=opts.name,
                           workload_type=opts.workload_type)

    def _cmd_bench(self, args: list[str], ns: dict):
        from .bench.notebook import run_bench_args

        opts = self._parse("bench", args)
        return run_bench_args(self._client(), opts, user_ns=self.shell.user_ns, namespace=ns)

    def _cmd_tags(self, args: list[str], ns: dict):
        import pandas as pd

        from .arguments import parse_tags

        opts = self._parse("tags", args)
        add = parse_tags(opts.set)
        client = self._client()
        tags = client.tags(opts.name, add=add, remove=opts.remove)
        return pd.DataFrame({"key": list(tags), "value": list(tags.values())})

    # ------------------------------------------------------------------------------------------
    # %%query / %query

    @no_var_expand
    @needs_local_scope
    @line_cell_magic("query")
    def query(self, line: str = "", cell: str | None = None, local_ns: dict | None = None):
        """Query an endpoint: `%%query NAME [--entity E] [-o VAR] [--raw] [--timeout S]` with a JSON,
        CSV or `$var` body; `%query NAME $df` on one line. Returns a DataFrame."""
        return self._run(lambda: self._query(line, cell, local_ns))

    @staticmethod
    def _split_query_line(line: str) -> tuple[str, str]:
        """Split `NAME [options] BODY [options after a $var]` into (options, body)."""
        m = re.search(r"(?:^|\s)([$\[{])", line)
        if not m:
            return line, ""
        start = m.start(1)
        head, body = line[:start], line[start:].strip()
        if body.startswith("$"):
            first, _, rest = body.partition(" ")
            return f"{head} {rest}", first
        return head, body

    def _query(self, line: str, cell: str | None, local_ns: dict | None):
        if cell is None or not cell.strip():
            head, body = self._split_query_line(line)
            if not body and cell is None:
                raise MagicUsageError("%query needs a body on the line",
                                      "Write `%query NAME $df` (or JSON), or use the cell magic %%query "
                                      "with the body below.")
        else:
            head, body = line, cell
        opts = self._parser("query").parse_args(_split(head))
        if opts.output is not None and not _IDENT.match(opts.output):
            raise MagicUsageError(f"-o {opts.output}: not a valid variable name", "Use a Python identifier, e.g. -o preds.")
        from .query_body import parse_body

        parsed = parse_body(body, self._ns(local_ns))
        client = self._client()
        result = client.query(opts.name, parsed, entity=opts.entity, timeout=opts.timeout)
        value = result.response if opts.raw else result.frame
        if opts.output:
            self.shell.user_ns[opts.output] = value
            return None
        return value

    # ------------------------------------------------------------------------------------------
    # completion

    def _endpoint_names(self) -> list[str]:
        from . import api

        stamp, names = self._names_cache
        if time.monotonic() - stamp < 10.0:
            return names
        client = api.current_client()
        if client is None:
            return names
        try:
            names = client.names()
        except Exception:  # noqa: BLE001 - completion must never raise
            return names
        self._names_cache = (time.monotonic(), names)
        return names

    def _entity_names(self, endpoint: str) -> list[str]:
        from . import api

        stamp, names = self._entities_cache.get(endpoint, (0.0, []))
        if time.monotonic() - stamp < 10.0:
            return names
        client = api.current_client()
        if client is None:
            return []
        try:
            names = client.get(endpoint).entity_names
        except Exception:  # noqa: BLE001
            return []
        self._entities_cache[endpoint] = (time.monotonic(), names)
        return names

    def _options(self, sub: str) -> list[str]:
        try:
            parser = self._parser(sub)
        except Exception:  # noqa: BLE001
            return []
        opts = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]  # noqa: SLF001
        if sub == "create":
            opts += [o for o in _ENTITY_OPTS if o.startswith("--")]
        return sorted(set(opts))

    def complete_serve(self, event) -> list[str]:
        text = getattr(event, "text_until_cursor", None) or event.line
        words = text.split()
        if not words:
            return []
        if text.endswith((" ", "\t")):
            words.append("")
        index = len(words) - 1
        current = words[-1]
        if index == 1:
            return list(SUBCOMMANDS)
        sub = words[1]
        if current.startswith("-"):
            return self._options(sub)
        prev = words[-2] if len(words) >= 2 else ""
        if sub == "connect":
            return ["local", "--profile", "--host"] if index == 2 else []
        if sub == "help":
            return list(SUBCOMMANDS) if index == 2 else []
        if sub in NAME_SUBCOMMANDS and index == 2:
            return self._endpoint_names()
        if sub in ("update", "schema") and prev == "--entity" and len(words) > 3:
            return self._entity_names(words[2])
        if sub == "logs" and index == 3:
            return self._entity_names(words[2])
        if sub == "traffic" and index >= 3:
            return [f"{e}=" for e in self._entity_names(words[2])]
        if sub in ("update", "create") and prev == "--workload-size":
            return ["Small", "Medium", "Large"]
        if sub in ("update", "create") and prev == "--workload-type":
            from .workloads import all_workload_type_names

            return sorted(all_workload_type_names())
        return []

    def complete_query(self, event) -> list[str]:
        text = getattr(event, "text_until_cursor", None) or event.line
        words = text.split()
        if text.endswith((" ", "\t")):
            words.append("")
        if len(words) == 2:
            return self._endpoint_names()
        if words and words[-1].startswith("-"):
            return ["--entity", "--output", "--raw", "--timeout", "-o"]
        if len(words) >= 3 and words[-2] == "--entity":
            return self._entity_names(words[1])
        return []


def load_ipython_extension(ip) -> None:
    """Register %serve and %%query/%query, completion, and say which backend will be used."""
    from . import __version__
    from .connection import describe_default

    magics = ServeMagics(shell=ip)
    table = ip.magics_manager.magics
    own_kinds = {"serve": ("line",), "query": ("line", "cell")}
    foreign = {(kind, name): table[kind][name] for name, kinds in own_kinds.items() for kind in kinds
               if name in table[kind] and not isinstance(getattr(table[kind][name], "__self__", None), ServeMagics)}
    ip.register_magics(magics)
    # Never take over a magic the host already owns (jupysql overwrote Databricks' own %sql):
    # keep theirs and register ours under a prefixed name.
    names = {"serve": "serve", "query": "query"}
    for name, kinds in own_kinds.items():
        if not any((kind, name) in foreign for kind in kinds):
            continue
        names[name] = f"serving_{name}"
        for kind in kinds:
            table[kind][names[name]] = table[kind][name]
            if (kind, name) in foreign:
                table[kind][name] = foreign[(kind, name)]
            else:
                del table[kind][name]
    # IPython binds hooks to the shell: they are called as hook(shell, event).
    ip.set_hook("complete_command", lambda _shell, event: magics.complete_serve(event),
                str_key=f"%{names['serve']}")
    for key in (f"%{names['query']}", f"%%{names['query']}"):
        ip.set_hook("complete_command", lambda _shell, event: magics.complete_query(event), str_key=key)
    # Name the backend without connecting, starting or importing anything heavy (the API imports
    # pandas and databricks-sdk; reuse it only if it is loaded already).
    api_module = sys.modules.get("jupyter_serving.api")
    client = api_module.current_client() if api_module is not None else None
    where = client.backend if client is not None else describe_default(magics.data_dir)
    print(f"jupyter-serving {__version__}: %{names['serve']} and %%{names['query']} will use {where}.")


def unload_ipython_extension(ip) -> None:
    table = ip.magics_manager.magics
    for kind in ("line", "cell"):
        for name in ("serve", "query", "serving_serve", "serving_query"):
            if isinstance(getattr(table[kind].get(name), "__self__", None), ServeMagics):
                del table[kind][name]
