"""Traffic splits that always sum to 100: what the sliders of the traffic editor do. Pure: no I/O.

Moving one entity's share to `value` gives the rest (100 − value − locked shares) to the other
unlocked entities in proportion to what they had (equally when they all had 0), in whole
percentages by largest remainder, so the total is exactly 100 after every move.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

TOTAL = 100


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split the integer `total` in proportion to `weights` (equally if they are all 0), by largest
    remainder; ties go to the earlier position. The result sums to `total` exactly."""
    n = len(weights)
    if n == 0:
        return []
    total = int(total)
    weights = [max(0.0, float(w)) for w in weights]
    mass = sum(weights)
    if mass <= 0:
        weights, mass = [1.0] * n, float(n)
    exact = [total * w / mass for w in weights]
    out = [int(x) for x in exact]
    short = total - sum(out)
    order = sorted(range(n), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[:short]:
        out[i] += 1
    return out


def even_split(count: int) -> list[int]:
    """[34, 33, 33] for 3: as even as whole percentages allow, earlier entities first."""
    return apportion(TOTAL, [1.0] * count)


def normalize(values: Sequence[int]) -> list[int]:
    """Scale any non-negative values to sum to 100 (an even split if they are all 0)."""
    return apportion(TOTAL, values)


def rebalance(values: Sequence[int], index: int, value: int, locked: Collection[int] = ()) -> list[int]:
    """Set `values[index]` to `value` and rebalance the others so that the split sums to 100.

    `locked` positions keep their share; `value` is clamped to what they leave. With no other
    unlocked position, the changed one takes everything the locked ones leave.
    """
    n = len(values)
    if not 0 <= index < n:
        raise IndexError(f"no entity at position {index} (have {n})")
    if n == 1:
        return [TOTAL]
    values = [max(0, int(v)) for v in values]
    locked = {i for i in locked if 0 <= i < n and i != index}
    locked_sum = sum(values[i] for i in locked)
    if locked_sum > TOTAL:  # inconsistent input: release the locks
        locked, locked_sum = set(), 0
    free = [i for i in range(n) if i != index and i not in locked]
    room = TOTAL - locked_sum
    if not free:
        new = list(values)
        new[index] = room
        return new
    value = min(max(0, int(value)), room)
    rest = apportion(room - value, [values[i] for i in free])
    new = list(values)
    new[index] = value
    for i, share in zip(free, rest):
        new[i] = share
    return new


def rebalance_split(split: Mapping[str, int], changed: str, value: int,
                    locked: Collection[str] = ()) -> dict[str, int]:
    """`rebalance` for a {entity: percentage} mapping, keeping its order."""
    names = list(split)
    if changed not in split:
        raise KeyError(f"no served entity '{changed}' in the split ({', '.join(names)})")
    new = rebalance([split[k] for k in names], names.index(changed), value,
                    [names.index(k) for k in locked if k in split])
    return dict(zip(names, new))


def describe(split: Mapping[str, int]) -> str:
    """'iris-1=70 iris-2=30': the `%serve traffic` argument form."""
    return " ".join(f"{k}={v}" for k, v in split.items())


def without(split: Mapping[str, int], removed: str) -> dict[str, int] | None:
    """The split once served entity `removed` is gone: its share goes to the others in proportion to
    theirs. None when that is ambiguous (several others, all at 0 %) and the caller must be told."""
    rest = {k: v for k, v in split.items() if k != removed}
    if not rest:
        return {}
    if len(rest) == 1:
        return {next(iter(rest)): TOTAL}
    if split.get(removed, 0) == 0:
        return rest
    if sum(max(0, v) for v in rest.values()) <= 0:
        return None
    return dict(zip(rest, normalize(list(rest.values()))))
