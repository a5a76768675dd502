"""Small-cell suppression (pure): nothing small is shown, nothing hidden can be worked out."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zhibao_aggregator.domain.suppression import CountTable, bounds, suppress

SMALLISH = st.one_of(st.integers(0, 6), st.integers(0, 40))


@dataclass(frozen=True)
class Tree:
    """A generated hierarchy: leaves with counts, parents summing their children."""

    table: CountTable
    leaves: tuple[str, ...]


@st.composite
def trees(
    draw: st.DrawFn, depth: int = 3, fan_out: int = 4, leaf: st.SearchStrategy[int] = SMALLISH
) -> Tree:
    """A random unit tree (root ``r``), every parent the sum of its children."""
    values: dict[str, int] = {}
    groups: dict[str, tuple[str, ...]] = {}
    leaves: list[str] = []

    def grow(code: str, level: int) -> int:
        count = draw(st.integers(0 if level else 1, fan_out)) if level < depth else 0
        if count == 0:
            values[code] = draw(leaf)
            leaves.append(code)
            return values[code]
        children = tuple(f"{code}.{n}" for n in range(count))
        groups[code] = children
        values[code] = sum(grow(child, level + 1) for child in children)
        return values[code]

    grow("r", 0)
    return Tree(CountTable(values, groups), tuple(leaves))


@given(tree=trees(), threshold=st.integers(1, 10))
def test_no_small_count_is_shown_and_no_zero_is_hidden(tree: Tree, threshold: int) -> None:
    hidden = suppress(tree.table, threshold)
    for unit, value in tree.table.values.items():
        if unit in hidden:
            assert value > 0, "a zero says nobody: it is shown"
        else:
            assert value == 0 or value >= threshold, f"{unit}={value} shown"


@given(tree=trees(), threshold=st.integers(2, 10))
def test_no_hidden_count_can_be_worked_out_from_the_sums(tree: Tree, threshold: int) -> None:
    table = tree.table
    hidden = suppress(table, threshold)
    inferred = bounds(table, hidden)
    for unit in hidden:
        low, high = inferred[unit]
        assert low < high, f"{unit}={table.values[unit]} is pinned to {low}"
        assert low <= table.values[unit] <= high, "the bounds hold the true count"
    for parent, children in table.groups.items():
        if parent not in hidden:
            rest = table.values[parent] - sum(table.values[c] for c in children if c not in hidden)
            assert rest == 0 or rest >= threshold, f"hidden children of {parent} sum to {rest}"


def _feasible_values(tree: Tree, hidden: frozenset[str], cap: int) -> dict[str, set[int]]:
    """Every value each hidden count takes over all assignments an attacker cannot rule out."""
    table = tree.table
    free = [leaf for leaf in tree.leaves if leaf in hidden]
    seen: dict[str, set[int]] = {u: set() for u in hidden}
    for guess in itertools.product(range(1, cap + 1), repeat=len(free)):
        values = {leaf: table.values[leaf] for leaf in tree.leaves}
        values.update(zip(free, guess, strict=True))
        for parent in sorted(table.groups, key=len, reverse=True):  # deepest first
            values[parent] = sum(values[c] for c in table.groups[parent])
        consistent = all(
            values[u] == table.values[u] if u not in hidden else values[u] >= 1
            for u in table.values
        )
        if consistent:
            for unit in hidden:
                seen[unit].add(values[unit])
    return seen


@settings(suppress_health_check=[HealthCheck.filter_too_much], deadline=None)
@given(tree=trees(depth=2, fan_out=3, leaf=st.integers(0, 7)), threshold=st.integers(2, 6))
def test_an_exhaustive_attacker_cannot_pin_a_hidden_count(tree: Tree, threshold: int) -> None:
    """Independent of ``bounds``: try every value of every hidden leaf."""
    hidden = suppress(tree.table, threshold)
    assume(sum(leaf in hidden for leaf in tree.leaves) <= 3)
    cap = tree.table.values["r"] + threshold + 2
    for unit, values in _feasible_values(tree, hidden, cap).items():
        assert tree.table.values[unit] in values
        assert len(values) >= 2, f"{unit} can only be {values}"


def test_a_parent_and_all_children_but_one_would_give_it_away() -> None:
    street = CountTable(
        {"street": 30, "a": 2, "b": 12, "c": 16},
        {"street": ("a", "b", "c")},
    )
    hidden = suppress(street, 5)
    assert hidden == {"a", "b"}, "the smallest other child is hidden with it"
    assert bounds(street, hidden)["a"] == (1, 13)


def test_hidden_children_that_add_up_to_a_small_count_take_a_third() -> None:
    street = CountTable(
        {"street": 33, "a": 2, "b": 1, "c": 9, "d": 21},
        {"street": ("a", "b", "c", "d")},
    )
    assert suppress(street, 5) == {"a", "b", "c"}


def test_a_hidden_parent_is_not_given_away_by_its_children() -> None:
    city = CountTable(
        {"city": 12, "d1": 3, "d2": 9, "s1": 3, "s2": 0, "s3": 9},
        {"city": ("d1", "d2"), "d1": ("s1", "s2"), "d2": ("s3",)},
    )
    hidden = suppress(city, 5)
    assert {"d1", "s1"} <= hidden
    assert all(low < high for low, high in (bounds(city, hidden)[u] for u in hidden))


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_threshold_one_hides_nothing_and_zeros_are_always_shown(threshold: int) -> None:
    table = CountTable({"p": 5, "a": 0, "b": 5}, {"p": ("a", "b")})
    assert suppress(table, threshold) == set()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        CountTable({"a": -1})
    with pytest.raises(ValueError, match="no count"):
        CountTable({"p": 1}, {"p": ("a",)})
    with pytest.raises(ValueError, match="at least 1"):
        suppress(CountTable({"a": 1}), 0)
