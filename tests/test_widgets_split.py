"""Pure parts behind the widgets: traffic rebalancing, generated code, default names."""
from __future__ import annotations

import itertools
import random

import pytest

from jupyter_serving.core import rules, traffic_split
from jupyter_serving.core.traffic_split import (
    apportion,
    even_split,
    normalize,
    rebalance,
    rebalance_split,
)


def test_apportion_sums_exactly_and_breaks_ties_in_order():
    assert apportion(100, [1, 1, 1]) == [34, 33, 33]
    assert apportion(100, [0, 0]) == [50, 50]
    assert apportion(10, [3, 1]) == [8, 2]  # 7.5 / 2.5: the earlier one gets the spare unit
    assert apportion(0, [5, 5]) == [0, 0]
    assert apportion(7, []) == []
    assert even_split(3) == [34, 33, 33] and even_split(1) == [100]
    assert normalize([1, 3]) == [25, 75] and normalize([0, 0, 0]) == [34, 33, 33]


def test_moving_one_slider_rebalances_the_others_in_proportion():
    assert rebalance([70, 30], 0, 40) == [40, 60]
    assert rebalance([50, 30, 20], 0, 80) == [80, 12, 8]  # 20 left, split 3:2
    assert rebalance([50, 50, 0], 2, 10) == [45, 45, 10]
    assert rebalance([100, 0, 0], 0, 40) == [40, 30, 30]  # others all at 0: equal shares
    assert rebalance([60, 40], 1, 100) == [0, 100]
    assert rebalance([60, 40], 1, 0) == [100, 0]


def test_out_of_range_values_are_clamped():
    assert rebalance([50, 50], 0, 130) == [100, 0]
    assert rebalance([50, 50], 0, -5) == [0, 100]
    assert rebalance([100], 0, 30) == [100]


def test_locked_entities_keep_their_share():
    assert rebalance([40, 30, 30], 0, 60, locked=[2]) == [60, 10, 30]
    assert rebalance([40, 30, 30], 0, 90, locked=[2]) == [70, 0, 30]  # clamped to what the lock leaves
    assert rebalance([40, 30, 30], 0, 10, locked=[1, 2]) == [40, 30, 30]  # nothing free: takes the rest
    assert rebalance([50, 50], 0, 20, locked=[0]) == [20, 80]  # locking the moved one is ignored


def test_bad_position_is_an_error():
    with pytest.raises(IndexError):
        rebalance([50, 50], 2, 10)


def test_rebalance_split_keeps_names_and_order():
    assert rebalance_split({"b": 70, "a": 30}, "a", 50) == {"b": 50, "a": 50}
    assert rebalance_split({"x": 20, "y": 30, "z": 50}, "x", 40, locked=["z"]) == {"x": 40, "y": 10, "z": 50}
    with pytest.raises(KeyError):
        rebalance_split({"a": 100}, "b", 10)
    assert traffic_split.describe({"a": 70, "b": 30}) == "a=70 b=30"


def test_random_moves_always_sum_to_100_and_keep_the_moved_value():
    rng = random.Random(7)
    for n, _ in itertools.product(range(2, 7), range(200)):
        values = normalize([rng.randint(0, 9) for _ in range(n)])
        index, value = rng.randrange(n), rng.randint(0, 100)
        locked = [i for i in range(n) if i != index and rng.random() < 0.3]
        new = rebalance(values, index, value, locked)
        assert sum(new) == 100 and all(0 <= v <= 100 for v in new)
        assert all(new[i] == values[i] for i in locked)
        room = 100 - sum(values[i] for i in locked)
        free = [i for i in range(n) if i != index and i not in locked]
        assert new[index] == (min(value, room) if free else room)
        # every split the sliders produce passes the backend's own rule
        names = [f"e{i}" for i in range(n)]
        rules.normalize_routes({"routes": [{"served_model_name": k, "traffic_percentage": v}
                                           for k, v in zip(names, new)]}, names)


def test_traffic_split_is_pure():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(traffic_split))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"__future__", "collections.abc", "typing"}
