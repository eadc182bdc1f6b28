"""Reading endpoints: `%serve list`, `status` (`--watch`), `logs` and `schema`."""
from __future__ import annotations

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
    p.add_argument("name")
    p.add_argument("--watch", action="store_true", help="refresh until the endpoint settles")
    p.add_argument("--timeout", type=float)


@command("status", "an endpoint's state, entities, traffic and pending config (`--watch` to follow it)",
         arguments=_status_arguments, takes_name=True)
def status(ctx: Context, opts):
    client = ctx.client()
    current = client.get(opts.name)
    if not opts.watch or current.is_settled:
        return current
    timeout = float(opts.timeout if opts.timeout is not None else ctx.wait_timeout)
    if in_kernel(ctx.shell):  # a panel that polls in the background: the kernel stays free
        from jupyter_serving.widgets import status_panel

        return status_panel(opts.name, client, initial=current, timeout=timeout)
    try:
        return client.wait(opts.name, timeout=timeout, on_progress=Progress(ctx.shell, "Watching"),
                           raise_on_failure=False)
    except KeyboardInterrupt:
        print("Stopped watching.")
        return None


def _logs_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("entity", nargs="?")
    p.add_argument("--build", action="store_true", help="container build logs")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")


def _complete_logs(typed: Typed) -> list[str]:
    return typed.names.entities(typed.words[2]) if typed.index == 3 else []


@command("logs", "model server logs: `logs NAME [ENTITY] [--build] [--tail N]`", arguments=_logs_arguments,
         takes_name=True, complete=_complete_logs)
def logs(ctx: Context, opts) -> None:
    if opts.tail is not None and opts.tail <= 0:
        raise InvalidInputError(f"--tail must be a positive number of lines, got {opts.tail}", "e.g. --tail 50.")
    client = ctx.client()
    fn = client.build_logs if opts.build else client.logs
    text = fn(opts.name, opts.entity, tail=opts.tail)
    print(text if text.strip() else f"(no {'build ' if opts.build else ''}logs yet)")


def _schema_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--entity")
    p.add_argument("--openapi", action="store_true", help="the raw OpenAPI document")


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
    print(f"# Request template for '{opts.name}' (fill in the values, then run it):")
    print(head)
    print(compact_json(template))
    return None
