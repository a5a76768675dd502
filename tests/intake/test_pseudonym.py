"""Keyed pseudonyms: stable per person, unlinkable without the key."""

from __future__ import annotations

import pytest

from tests.support.events import resident_id
from zhibao_intake.domain.pseudonym import Pseudonymiser
from zhibao_shared.events import LocalRefPerson, ResidentIdPerson

KEY = b"k" * 32


def test_same_resident_is_one_pseudonym_everywhere() -> None:
    person = ResidentIdPerson(id_number=resident_id())
    one = Pseudonymiser(KEY)
    assert one.pseudonym(person, "640106001001") == one.pseudonym(person, "640106002003")


def test_pseudonym_depends_on_the_key_and_hides_the_number() -> None:
    number = resident_id()
    person = ResidentIdPerson(id_number=number)
    first = Pseudonymiser(KEY).pseudonym(person, "640106001001").pid
    second = Pseudonymiser(b"j" * 32).pseudonym(person, "640106001001").pid
    assert first != second
    assert number not in first and number[6:14] not in first


def test_local_refs_are_scoped_to_their_community() -> None:
    ref = LocalRefPerson(ref="room-12")
    one = Pseudonymiser(KEY)
    assert one.pseudonym(ref, "640106001001") != one.pseudonym(ref, "640106001002")


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymiser(b"short")
