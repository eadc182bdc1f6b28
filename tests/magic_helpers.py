"""Running magics in a real IPython shell and capturing what the user would see."""
from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError


@dataclass
class Ran:
    result: Any  # ExecutionResult
    out: str
    err: str

    @property
    def value(self) -> Any:
        return self.result.result

    @property
    def error(self) -> BaseException | None:
        return self.result.error_in_exec or self.result.error_before_exec


def shell():
    """The process-wide InteractiveShell with jupyter_serving loaded (loading twice is harmless)."""
    from IPython.core.interactiveshell import InteractiveShell

    import jupyter_serving

    ip = InteractiveShell.instance()
    if "serve" not in ip.magics_manager.magics["line"]:
        with redirect_stdout(io.StringIO()):
            jupyter_serving.load_ipython_extension(ip)
    ip.run_line_magic("config", "ServeMagics.short_errors = True")
    ip.run_line_magic("config", "ServeMagics.raise_errors = False")
    return ip


def run(ip, code: str) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        result = ip.run_cell(code, store_history=False)
    return Ran(result, out.getvalue(), err.getvalue())


def ok(ip, code: str) -> Ran:
    ran = run(ip, code)
    assert ran.error is None, f"{code!r} failed: {ran.error!r}\n{ran.out}\n{ran.err}"
    return ran


def one_line_error(ran: Ran) -> str:
    """Assert the cell failed with one line and no traceback; return the message."""
    assert type(ran.error) is UsageError, f"expected a UsageError, got {ran.error!r}\n{ran.out}\n{ran.err}"
    message = str(ran.error)
    assert "\n" not in message, message
    assert "Traceback" not in ran.out + ran.err
    assert ran.err.strip() == f"UsageError: {message}", ran.err
    assert ran.err.count("\n") == 1
    return message
