"""`ServeMagics`: `%serve SUBCOMMAND ...` (dispatched through the command registry) and `%%query`.

Errors: an expected failure (`ServingError`) is shown as one line without a traceback (an exact
`UsageError`, the only type IPython prints without one), with the hint written for the magics
(`err.one_line("magic")`). `%config ServeMagics.short_errors = False` shows tracebacks;
`%config ServeMagics.raise_errors = True` raises the error as a real exception so that
nbval/papermill fail the cell (a UsageError is only printed to stderr).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, needs_local_scope, no_var_expand
from traitlets import Bool, Float, Unicode
from traitlets.config.configurable import Configurable

import jupyter_serving.magics.commands  # noqa: F401 - registers the subcommands
from jupyter_serving.core.errors import NotFoundError, ServingError
from jupyter_serving.magics import completion, registry
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.errors import HelpShown, did_you_mean
from jupyter_serving.magics.parsing import split_words
from jupyter_serving.magics.query import run_query


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
        self.names = completion.EndpointNames()

    def _context(self, local_ns: dict | None) -> Context:
        ns = dict(self.shell.user_ns) if self.shell is not None else {}
        if local_ns:
            ns.update(local_ns)
        return Context(shell=self.shell, ns=ns, names=self.names, data_dir=self.data_dir,
                       wait_timeout=float(self.wait_timeout), query_timeout=float(self.query_timeout))

    def _run(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except HelpShown:
            return None
        except ServingError as err:
            return self._fail(err)

    def _fail(self, err: ServingError):
        line = err.one_line("magic")
        if self.raise_errors:
            if self.short_errors:
                err._render_traceback_ = lambda: [f"{type(err).__name__}: {line}"]  # type: ignore[attr-defined]
            raise err
        if self.short_errors:
            raise UsageError(line) from None
        raise err

    @no_var_expand
    @needs_local_scope
    @line_magic("serve")
    def serve(self, line: str = "", local_ns: dict | None = None):
        """Manage serving endpoints. `%serve help` lists the subcommands."""
        return self._run(lambda: self._serve(line, local_ns))

    def _serve(self, line: str, local_ns: dict | None):
        words = split_words(line)
        if not words or words[0] in ("-h", "--help"):
            words = ["help"]
        command = registry.lookup(words[0])
        opts = command.parse_args(words[1:])
        ctx = self._context(local_ns)
        try:
            return command.run(ctx, opts)
        except NotFoundError as err:
            name = getattr(opts, "name", None) if command.takes_name else None
            if not name:
                raise
            raise did_you_mean(err, lambda: ctx.client().names(),
                               lambda new: "%serve " + line.strip().replace(name, new, 1)) from None

    @no_var_expand
    @needs_local_scope
    @line_cell_magic("query")
    def query(self, line: str = "", cell: str | None = None, local_ns: dict | None = None):
        """Query an endpoint: `%%query NAME [--entity E] [-o VAR] [--raw] [--timeout S]` with a JSON,
        CSV or `$var` body; `%query NAME $df` on one line. Returns a DataFrame."""
        return self._run(lambda: run_query(self._context(local_ns), line, cell))

    def complete_serve(self, event) -> list[str]:
        return completion.complete_serve(completion.Typed.from_event(event, self.names))

    def complete_query(self, event) -> list[str]:
        return completion.complete_query(completion.Typed.from_event(event, self.names))
