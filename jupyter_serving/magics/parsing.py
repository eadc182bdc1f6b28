"""Splitting a magic's line into words, and argparse parsers that never exit the kernel."""
from __future__ import annotations

import argparse
import shlex
import sys

from jupyter_serving.magics.errors import HelpShown, MagicUsageError


class CommandParser(argparse.ArgumentParser):
    """argparse whose errors raise `MagicUsageError` (with `hint`) and whose -h raises `HelpShown`."""

    def __init__(self, prog: str, hint: str, **kwargs):
        self.hint = hint
        super().__init__(prog=prog, allow_abbrev=False, **kwargs)

    def error(self, message):
        raise MagicUsageError(f"{self.prog}: {message}", self.hint)

    def exit(self, status=0, message=None):
        if message:
            print(message, file=sys.stderr)
        raise HelpShown()

    def option_arity(self) -> dict[str, bool]:
        """Each option (but -h/--help) -> whether it takes a value."""
        return {o: a.nargs != 0 for a in self._actions if a.dest != "help" for o in a.option_strings}

    def long_options(self) -> list[str]:
        """The `--options` this parser knows (for completion)."""
        return [o for a in self._actions for o in a.option_strings if o.startswith("--")]


def split_words(line: str) -> list[str]:
    """The shell-like words of a magic's line; an unclosed quote is a `MagicUsageError`."""
    try:
        return shlex.split(line, posix=True)
    except ValueError as err:
        raise MagicUsageError(f"Cannot parse the arguments ({err})", "Close every quote you open.") from None
