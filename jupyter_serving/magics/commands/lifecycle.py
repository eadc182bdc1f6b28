"""`%serve stop`, `start` and `delete`."""
from __future__ import annotations

from jupyter_serving.core.errors import InvalidInputError
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.errors import endpoint_name
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command


def _name_and_no_wait(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--no-wait", action="store_true")


@command("stop", "stop an endpoint (it refuses queries until started)", arguments=_name_and_no_wait,
         takes_name=True)
def stop(ctx: Context, opts):
    client = ctx.client()
    before = client.get(opts.name)
    if before.is_stopped:
        print(f"Endpoint '{opts.name}' is already stopped.")
        return before
    return ctx.wait(lambda **wait: client.stop(opts.name, **wait), opts.name, verb="Stopping", doing="stopping",
                    no_wait=opts.no_wait)


@command("start", "start a stopped endpoint", arguments=_name_and_no_wait, takes_name=True)
def start(ctx: Context, opts):
    client = ctx.client()
    before = client.get(opts.name)
    if not before.is_stopped:
        print(f"Endpoint '{opts.name}' is not stopped; nothing to start.")
        return before
    return ctx.wait(lambda **wait: client.start(opts.name, **wait), opts.name, verb="Starting", doing="starting",
                    no_wait=opts.no_wait)


def _delete_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="confirm: deleting cannot be undone")


@command("delete", "delete an endpoint: `delete NAME --yes`", arguments=_delete_arguments, takes_name=True)
def delete(ctx: Context, opts) -> None:
    endpoint_name(opts.name)
    if not opts.yes:
        raise InvalidInputError(f"Deleting endpoint '{opts.name}' cannot be undone; nothing was deleted",
                                f"Confirm with `%serve delete {opts.name} --yes`.")
    ctx.client().delete(opts.name)
    ctx.names.forget()
    print(f"Deleted endpoint '{opts.name}'.")
