"""`%serve traffic NAME E1=80 E2=20`: split the traffic (no split: the traffic editor widget)."""
from __future__ import annotations

from jupyter_serving.magics.completion import Typed
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command


def _arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("routes", nargs="*", metavar="E=P", help="the new split; none opens the traffic editor")
    p.add_argument("--no-wait", action="store_true")


def _complete(typed: Typed) -> list[str]:
    return [f"{e}=" for e in typed.names.entities(typed.words[2])] if typed.index >= 3 else []


@command("traffic", "split traffic: `traffic NAME E1=80 E2=20` (no split: sliders)", arguments=_arguments,
         takes_name=True, complete=_complete)
def traffic(ctx: Context, opts):
    from jupyter_serving.core.arguments import parse_traffic

    client = ctx.client()
    if not opts.routes:
        from jupyter_serving.widgets import traffic_editor

        return traffic_editor(opts.name, client)
    routes = parse_traffic(opts.routes)
    return ctx.wait(lambda **wait: client.set_traffic(opts.name, routes, **wait), opts.name,
                    verb="Updating", doing="updating", no_wait=opts.no_wait)
