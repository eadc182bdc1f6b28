"""`%serve help [SUBCOMMAND]`: the list of subcommands (from the registry), or one's options."""
from __future__ import annotations

import sys

from jupyter_serving.magics import registry
from jupyter_serving.magics.completion import Typed
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.query import USAGE as QUERY_USAGE
from jupyter_serving.magics.registry import command


def print_help(sub: str | None = None) -> None:
    if sub:
        registry.lookup(sub).parser().print_help(sys.stdout)
        return
    width = max(len(s) for s in registry.COMMANDS)
    lines = ["%serve SUBCOMMAND ... (model serving endpoints)"]
    lines += [f"  {c.name.ljust(width)}  {c.summary}" for c in registry.COMMANDS.values()]
    lines += [f"{QUERY_USAGE}   query with a JSON/CSV/$var body",
              "%query NAME $df                                           the same on one line",
              '%query NAME --chat "text" [--no-stream] ...'.ljust(len(QUERY_USAGE) + 3)
              + "a chat turn, streamed (or %%query with messages)",
              "Settings: %config ServeMagics.short_errors / raise_errors / query_timeout / wait_timeout"]
    print("\n".join(lines))


def _arguments(p: CommandParser) -> None:
    p.add_argument("subcommand", nargs="?")


def _complete(typed: Typed) -> list[str]:
    return list(registry.COMMANDS) if typed.index == 2 else []


@command("help", "this help, or `help SUBCOMMAND`", arguments=_arguments, complete=_complete,
         description="List the subcommands, or show one's options.")
def show_help(ctx: Context, opts) -> None:
    print_help(opts.subcommand)
