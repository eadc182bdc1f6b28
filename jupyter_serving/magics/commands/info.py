"""Reading endpoints: `%serve list`, `status` (`--watch`), `logs` and `schema`."""
from __future__ import annotations

import time

from jupyter_serving.core.errors import InvalidInputError
from jupyter_serving.magics.completion import Typed
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.progress import Progress, in_kernel
from jupyter_serving.magics.registry import command


def _list_arguments(p: CommandParser) -> None:
    p.add_argument("--names", action="store_true", help="only the names")


@command("list", "all endpoints as a DataFrame", arguments=_list_arguments)
def list_endpoints(ctx: Context, opts):
    client = ctx.client()
    if opts.names:
        names = client.names()
        ctx.names.remember(names)
        return names
    frame = client.list()
    ctx.names.remember(list(frame["name"]))
    return frame


def _status_arguments(p: CommandParser) -> None:
    from jupyter_serving.core.status import WATCH_UNTIL

    p.add_argument("name")
    p.add_argument("--watch", action="store_true",
                   help="follow it live: until the panel is closed (Ctrl-C outside a notebook), --until or --timeout")
    p.add_argument("--until", choices=sorted(WATCH_UNTIL), help="stop watching once the endpoint is ready, settled "
                   "(no update running) or stopped")
    p.add_argument("--timeout", type=float, help="stop watching after S seconds")


@command("status", "an endpoint's state, entities, traffic and pending config (`--watch` to follow it)",
         arguments=_status_arguments, takes_name=True)
def status(ctx: Context, opts):
    from jupyter_serving.core.status import WATCH_UNTIL

    if (opts.until or opts.timeout is not None) and not opts.watch:
        opts.watch = True  # --until/--timeout only make sense while watching
    client = ctx.client()
    current = client.get(opts.name)
    if not opts.watch:
        return current
    if in_kernel(ctx.shell):  # a panel that polls in the background: the kernel stays free
        from jupyter_serving.widgets import status_panel

        why, until = WATCH_UNTIL[opts.until] if opts.until else ("", None)
        return status_panel(opts.name, client, initial=current, until=until, until_text=why,
                            timeout=float(opts.timeout) if opts.timeout is not None else float("inf"))
    return _watch_here(ctx, client, opts)


def _watch_here(ctx: Context, client, opts):
    """Outside a kernel nothing can close a panel: watch in the foreground until `--until` (default:
    settled), `--timeout` or Ctrl-C, and say when and why it stopped."""
    from jupyter_serving.core.errors import ServingTimeoutError
    from jupyter_serving.core.status import WATCH_UNTIL

    why, until = WATCH_UNTIL[opts.until or "settled"]
    timeout = float(opts.timeout if opts.timeout is not None else ctx.wait_timeout)
    start = time.monotonic()
    try:
        final = client.wait(opts.name, timeout=timeout, on_progress=Progress(ctx.shell, "Watching"),
                            until=until, raise_on_failure=False)
        reason = why if until(final) else "the update ended"
    except ServingTimeoutError:
        final, reason = client.get(opts.name), f"--timeout {timeout:g} s passed"
    except KeyboardInterrupt:
        final, reason = None, "interrupted"
    elapsed = time.monotonic() - start
    state = f" ('{opts.name}' is {final.state})" if final is not None else ""
    print(f"Stopped watching after {elapsed:.0f} s: {reason}{state}.")
    return final


def _logs_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("entity", nargs="?")
    p.add_argument("--build", action="store_true", help="container build logs")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    lines = p.add_mutually_exclusive_group()
    lines.add_argument("--model-only", action="store_true",
                       help="only the model's own lines (the default): no uvicorn access lines or MLflow warnings")
    lines.add_argument("--all", action="store_true", help="every line, the serving stack's too")


def _complete_logs(typed: Typed) -> list[str]:
    return typed.names.entities(typed.words[2]) if typed.index == 3 else []


@command("logs", "model server logs: `logs NAME [ENTITY] [--build] [--tail N] [--all]`", arguments=_logs_arguments,
         takes_name=True, complete=_complete_logs)
def logs(ctx: Context, opts) -> None:
    if opts.tail is not None and opts.tail <= 0:
        raise InvalidInputError(f"--tail must be a positive number of lines, got {opts.tail}", "e.g. --tail 50.")
    client = ctx.client()
    if opts.build:
        text = client.build_logs(opts.name, opts.entity, tail=opts.tail)
        print(text if text.strip() else "(no build logs yet)")
        return
    model_only = not opts.all
    text = client.logs(opts.name, opts.entity, tail=opts.tail, model_only=model_only)
    print(text if text.strip() else "(no logs yet)")
    if model_only and not opts.model_only:  # the short view: say how to see everything
        again = " ".join(["%serve logs", opts.name] + ([opts.entity] if opts.entity else [])
                         + ([f"--tail {opts.tail}"] if opts.tail else []) + ["--all"])
        print(f"(the model's own lines; `{again}` adds uvicorn access lines and MLflow warnings)")


def _schema_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--entity")
    p.add_argument("--openapi", action="store_true", help="the raw OpenAPI document")
    p.add_argument("--insert", action="store_true", help="put the %%%%query template in a new cell below")


def _complete_schema(typed: Typed) -> list[str]:
    return typed.names.entities(typed.words[2]) if typed.prev == "--entity" and len(typed.words) > 3 else []


@command("schema", "the request format, as a %%query template", arguments=_schema_arguments, takes_name=True,
         complete=_complete_schema)
def schema(ctx: Context, opts):
    from jupyter_serving.core.query_body import compact_json

    client = ctx.client()
    if opts.openapi:
        return client.openapi(opts.name)
    template = client.request_template(opts.name, opts.entity)
    head = f"%%query {opts.name}" + (f" --entity {opts.entity}" if opts.entity else "")
    if opts.insert and ctx.shell is not None:  # like the sidebar's Query: a new cell below, to fill in
        ctx.shell.set_next_input(f"{head}\n{compact_json(template)}", replace=False)
        print(f"Inserted a %%query cell for '{opts.name}' below: fill in the values, then run it.")
        return None
    print(f"# Request template for '{opts.name}' (fill in the values, then run it):")
    print(head)
    print(compact_json(template))
    return None
