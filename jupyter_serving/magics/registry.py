"""The `%serve` subcommands: one `Command` per subcommand, registered by `@command` in `commands/`.

A command owns its argparse parser (arguments, help text), whether its first argument is an
endpoint NAME, how to complete its other arguments, and its run function. `%serve`'s dispatch, its
help listing and its tab completion are all derived from `COMMANDS`: adding a subcommand is adding a
module to `commands/` (and importing it in `commands/__init__.py`).
"""
from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_serving.magics.errors import MagicUsageError
from jupyter_serving.magics.parsing import CommandParser

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_serving.magics.completion import Typed
    from jupyter_serving.magics.context import Context

Run = Callable[["Context", argparse.Namespace], Any]
#: Completes what `Typed` is typing (after the subcommand and, for a NAME command, its name).
Complete = Callable[["Typed"], list[str]]


@dataclass
class Command:
    name: str
    summary: str  # one line in `%serve help`
    arguments: Callable[[CommandParser], None]  # adds the arguments to the (lazily built) parser
    run: Run
    takes_name: bool = False  # the first positional argument is an endpoint NAME (completed)
    description: str = ""  # `%serve help NAME` (default: the summary)
    complete: Complete | None = None
    #: Parses the words after the subcommand with the command's parser (default: `parse_args`).
    parse: Callable[[CommandParser, list[str]], argparse.Namespace] | None = None
    extra_options: Callable[[], list[str]] | None = None  # options `parse` accepts beyond the parser's
    _parser: CommandParser | None = field(default=None, init=False, repr=False)

    def parser(self) -> CommandParser:
        if self._parser is None:
            parser = CommandParser(f"%serve {self.name}", f"`%serve help {self.name}` shows the usage.",
                                   description=self.description or self.summary)
            self.arguments(parser)
            self._parser = parser
        return self._parser

    def parse_args(self, args: list[str]) -> argparse.Namespace:
        if self.parse is not None:
            return self.parse(self.parser(), args)
        return self.parser().parse_args(args)

    def options(self) -> list[str]:
        """Every `--option` of the command, sorted (for completion)."""
        opts = self.parser().long_options() + (self.extra_options() if self.extra_options else [])
        return sorted(set(opts))


COMMANDS: dict[str, Command] = {}


def command(name: str, summary: str, *, arguments: Callable[[CommandParser], None], takes_name: bool = False,
            description: str = "", complete: Complete | None = None,
            parse: Callable[[CommandParser, list[str]], argparse.Namespace] | None = None,
            extra_options: Callable[[], list[str]] | None = None) -> Callable[[Run], Run]:
    """Register the decorated `run(ctx, opts)` as `%serve NAME`."""
    def register(run: Run) -> Run:
        if name in COMMANDS:
            raise ValueError(f"%serve {name} is registered twice")
        COMMANDS[name] = Command(name, summary, arguments, run, takes_name=takes_name, description=description,
                                 complete=complete, parse=parse, extra_options=extra_options)
        return run
    return register


def lookup(name: str) -> Command:
    """The command named `name`, or a `MagicUsageError` suggesting the closest one."""
    if name in COMMANDS:
        return COMMANDS[name]
    close = difflib.get_close_matches(name, list(COMMANDS), n=1)
    raise MagicUsageError(f"%serve has no subcommand '{name}'",
                          (f"Did you mean `%serve {close[0]}`? " if close else "")
                          + "`%serve help` lists the subcommands.")
