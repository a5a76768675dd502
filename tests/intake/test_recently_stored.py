"""Intake's memory of stored identities: bounded, forgetting the oldest first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zhibao_intake.domain.recently_stored import RecentlyStored


def test_beyond_capacity_the_oldest_identities_are_forgotten() -> None:
    memory = RecentlyStored(3)
    memory.add(["a", "b"])
    memory.add(["c", "d", "e"])
    assert [i for i in "abcde" if i in memory] == ["c", "d", "e"]
    assert len(memory) == 3


def test_a_repeat_does_not_prolong_an_identity() -> None:
    memory = RecentlyStored(2)
    memory.add(["a", "b"])
    memory.add(["a", "c"])
    assert "a" not in memory
    assert "b" in memory and "c" in memory


def test_capacity_zero_remembers_nothing() -> None:
    memory = RecentlyStored(0)
    memory.add(["a"])
    assert "a" not in memory
    assert len(memory) == 0


@given(
    capacity=st.integers(min_value=1, max_value=20),
    batches=st.lists(st.lists(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), max_size=8)),
)
def test_it_holds_exactly_the_last_distinct_identities_first_seen(
    capacity: int, batches: list[list[str]]
) -> None:
    memory = RecentlyStored(capacity)
    first_seen: list[str] = []
    for batch in batches:
        memory.add(batch)
        for identity in batch:
            if identity not in first_seen[-capacity:]:
                first_seen.append(identity)
    expected = set(first_seen[-capacity:])
    assert {i for i in "abcdefghijklmnopqrstuvwxyz" if i in memory} == expected
    assert len(memory) == len(expected)
