"""Benchmark options, parsed once for every front-end: concurrency levels, open-loop rates, positive numbers.

`parse_levels` / `parse_rates` take what a user writes ("1,2,4,8", "1 2 4", a number, a list) and
are what the engine (`runner`), `run_bench` and `BenchmarkWidget` all use. Bad options raise
`BenchError` (a ValueError too), with a hint. Pure: no I/O.
"""
from __future__ import annotations

import math
from typing import Any

from jupyter_serving.bench.errors import BenchError

DEFAULT_CONCURRENCY = (1, 2, 4, 8)
DEFAULT_DURATION_S = 5.0
DEFAULT_WARMUP_S = 1.0
MAX_CONCURRENCY = 1024  # one socket per worker; beyond this the client's fd limit is the test
LEVELS_HINT = "Give levels like 1,2,4,8."
RATES_HINT = "Give requests/s like 50 or 50,100."


def _items(value: Any) -> list[Any]:
    """The words of "1,2 4", a single number, or the items of a list."""
    if isinstance(value, bool):
        raise BenchError(f"Expected a number or a list of numbers, got {value!r}", "")
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return list(value) if value is not None else []


def parse_levels(value: Any) -> list[int]:
    """Concurrency levels from "1,2,4,8", "1 2 4", an int or a list of ints (1 to MAX_CONCURRENCY)."""
    levels = []
    for item in _items(value):
        if isinstance(item, bool):
            raise BenchError(f"Concurrency level {item!r} is not an integer", LEVELS_HINT)
        try:
            level = int(str(item).strip())
        except ValueError:
            raise BenchError(f"Concurrency level '{item}' is not an integer", LEVELS_HINT) from None
        if not 1 <= level <= MAX_CONCURRENCY:
            raise BenchError(f"Concurrency level {level} must be from 1 to {MAX_CONCURRENCY}", LEVELS_HINT)
        levels.append(level)
    if not levels:
        raise BenchError("No concurrency levels given", LEVELS_HINT)
    return levels


def parse_rates(value: Any) -> list[float]:
    """Open-loop rates (requests/s) from "50,100", a number or a list of numbers."""
    rates = []
    for item in _items(value):
        try:
            rate = float(str(item).strip())
        except ValueError:
            raise BenchError(f"Rate '{item}' is not a number", RATES_HINT) from None
        if isinstance(item, bool) or not rate > 0 or not math.isfinite(rate):
            raise BenchError(f"Rate {item} must be a positive number of requests/s", "e.g. --rate 50.")
        rates.append(rate)
    if not rates:
        raise BenchError("No rate given", RATES_HINT)
    return rates


def positive(value: Any, what: str) -> float | None:
    """`value` as a positive finite number; None for None or ''."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BenchError(f"{what} must be a number, got {value!r}", "") from None
    if not number > 0 or not math.isfinite(number):
        raise BenchError(f"{what} must be positive, got {value!r}", "")
    return number
