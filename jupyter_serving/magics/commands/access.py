"""`%serve permissions` (who may do what) and `%serve tags`."""
from __future__ import annotations

from jupyter_serving.magics.context import Context
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command


def _permissions_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--grant", nargs=2, metavar=("PRINCIPAL", "LEVEL"),
                   help="user e-mail, group:NAME or sp:ID; CAN_MANAGE, CAN_QUERY or CAN_VIEW")


@command("permissions", "who may do what: `permissions NAME [--grant USER LEVEL]`",
         arguments=_permissions_arguments, takes_name=True)
def permissions(ctx: Context, opts):
    client = ctx.client()
    if opts.grant:
        principal, level = opts.grant
        return client.grant(opts.name, principal, level)
    return client.permissions(opts.name)


def _tags_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("set", nargs="*", metavar="K=V")
    p.add_argument("--remove", nargs="+", default=[], metavar="K")


@command("tags", "show or change tags: `tags NAME [k=v ...] [--remove k ...]`", arguments=_tags_arguments,
         takes_name=True)
def tags(ctx: Context, opts):
    import pandas as pd

    from jupyter_serving.core.arguments import parse_tags

    add = parse_tags(opts.set)
    current = ctx.client().tags(opts.name, add=add, remove=opts.remove)
    return pd.DataFrame({"key": list(current), "value": list(current.values())})
