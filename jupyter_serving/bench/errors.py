"""The benchmark's expected errors: `BenchError`, and the load engine's failures as one-line errors.

`engine_error` and `error_message` are what `run_bench` and `BenchmarkWidget` both show.
"""
from __future__ import annotations

from jupyter_serving.core.errors import InvalidInputError, ServingError


class BenchError(InvalidInputError, ValueError):
    """A benchmark that cannot run as asked (bad options, endpoint not ready, load refused).

    A ValueError too: the plain-Python engine (`runner.sweep`, ...) refuses bad options with it."""


def engine_error(err: BaseException) -> ServingError:
    """The one-line ServingError for an error of the load engine; re-raises anything else."""
    from jupyter_serving.bench.loadgen import LoadTestError
    from jupyter_serving.bench.target import TargetNotAllowed

    if isinstance(err, TargetNotAllowed):
        return BenchError(str(err), "")
    if isinstance(err, LoadTestError):
        return ServingError(f"The load test could not run: {err}", "Check that the endpoint answers queries.")
    if isinstance(err, (ValueError, TypeError)):
        return BenchError(str(err), "")
    raise err


def error_message(err: BaseException) -> str:
    """One line for any error of a run: a ServingError's message, an engine error's, else type and text."""
    if isinstance(err, ServingError):
        return str(err)
    try:
        return str(engine_error(err))
    except BaseException:  # noqa: BLE001 - not an engine error: name it
        return f"{type(err).__name__}: {err}"
