"""Resident ID validation: format, date of birth, ISO 7064 MOD 11-2 check digit."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.events import resident_id
from zhibao_shared.resident_id import (
    InvalidResidentId,
    check_character,
    contains_resident_id,
    mask_resident_ids,
    normalize_resident_id,
)


def test_published_example_with_x_check_digit_is_valid() -> None:
    # GB 11643-1999's worked example.
    assert normalize_resident_id("11010519491231002x") == "11010519491231002X"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("1101051949123100", "18 characters"),
        ("01010519491231002X", "18 characters"),
        ("11010519491331002X", "date of birth"),
        ("11010518700230002X", "date of birth"),
        ("110105194912310021", "check digit"),
        ("11010518000101002X", "plausible range"),
    ],
)
def test_invalid_numbers_say_why(number: str, reason: str) -> None:
    with pytest.raises(InvalidResidentId, match=reason) as info:
        normalize_resident_id(number)
    assert number not in str(info.value)


def test_future_birth_date_is_refused() -> None:
    number = resident_id(born=date(2030, 1, 1))
    with pytest.raises(InvalidResidentId):
        normalize_resident_id(number, today=date(2026, 11, 25))


@given(
    region=st.integers(110000, 659999),
    born=st.dates(date(1900, 1, 1), date(2020, 12, 31)),
    seq=st.integers(0, 999),
)
def test_any_correctly_built_number_is_valid_and_any_other_check_is_not(
    region: int, born: date, seq: int
) -> None:
    number = resident_id(str(region), born, seq)
    assert normalize_resident_id(number) == number
    for wrong in "0123456789X":
        if wrong != number[17]:
            with pytest.raises(InvalidResidentId, match="check digit"):
                normalize_resident_id(number[:17] + wrong)


def test_check_character_matches_hand_computation() -> None:
    # 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167
    # 167 mod 11 = 2 -> "X"
    assert check_character("11010519491231002") == "X"


def test_free_text_containing_a_valid_number_is_recognised_and_masked() -> None:
    number = resident_id(seq=777)
    assert contains_resident_id(f"case-{number}")
    assert contains_resident_id(f"case-{number.lower()}/2")
    assert not contains_resident_id(f"case-{number[:-1]}{'1' if number[-1] != '1' else '2'}")
    # A digit glued on (also behind a separator) does not hide a number; a long record
    # number with no valid resident ID inside is not one.
    assert contains_resident_id(f"order-9{number}")
    assert contains_resident_id(f"{number} 5")
    assert not contains_resident_id("order-1234567890123456789")
    assert (
        mask_resident_ids(f"id {number}, again {number}") == "id [redacted-id], again [redacted-id]"
    )


@given(st.text(alphabet="0123456789-X ", max_size=60))
def test_masked_text_never_contains_a_resident_id(text: str) -> None:
    assert not contains_resident_id(mask_resident_ids(text))


NUMBER = "11010519491231002X"


def _in_script(zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in NUMBER)


@pytest.mark.parametrize(
    "disguised",
    [
        f"/gate-{_in_script(0x0F20)}",  # Tibetan digits
        f"evt-{_in_script(0x1810)}",  # Mongolian digits
        _in_script(0x0660),  # Arabic-Indic digits
        "".join("〇一二三四五六七八九"[int(c)] if c.isdigit() else c for c in NUMBER),
        "".join("零壹贰叁肆伍陆柒捌玖"[int(c)] if c.isdigit() else c for c in NUMBER),
    ],
)
def test_numbers_in_other_scripts_digits_or_chinese_numerals_are_found_and_masked(
    disguised: str,
) -> None:
    """An attack review sent these as an event's id and source: accepted, and on the bus
    in the clear (Python's int() reads Tibetan and Mongolian digits as ours)."""
    assert contains_resident_id(disguised)
    masked = mask_resident_ids(disguised)
    assert "[redacted-id]" in masked and not contains_resident_id(masked)


@pytest.mark.parametrize(
    "label",
    [
        "/640106001001/gate-3",
        "640106001001-20261207-0001",
        "3号楼2单元501",
        "08:00:00",
        # devices' id schemes a review found refused when slashes and colons were dropped
        "640106:20240623:4252",
        "640106/20250619/0971",
        "urn:640106:20240613:90602",
        "http://10.59.42.193:8080/640106006032/gate-6",
    ],
)
def test_ordinary_identifiers_are_not_taken_for_numbers(label: str) -> None:
    assert not contains_resident_id(label)
    assert mask_resident_ids(label) == label
