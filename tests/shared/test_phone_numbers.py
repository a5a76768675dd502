"""Mainland phone numbers: found in free text and identifiers like resident IDs, by the
same folding of digits; masked in free text, logs and errors, refused in identifiers."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zhibao_shared.resident_id import (
    PHONE_MASK,
    contains_mobile_number,
    mask_identifiers,
    mask_phone_numbers,
)

MOBILE = "13912345678"
FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")

#: Spellings of one mobile number, each masked whole.
MOBILES = [
    MOBILE,
    f"+86{MOBILE}",
    f"+86 {MOBILE}",
    f"86{MOBILE}",
    f"0086{MOBILE}",
    f"+86-{MOBILE}",
    "139-1234-5678",
    "139 1234 5678",
    "+86 139 1234 5678",
    "139\u200b1234\u200b5678",
    MOBILE.translate(FULL_WIDTH),
    "139-1234-5678".translate(FULL_WIDTH),
    "139\u30001234\u30005678",
    "一三九一二三四五六七八",
    "15000000000",
    "19912345678",
]
LANDLINES = ["010-12345678", "0951-1234567", "021-87654321", "(010)12345678", "(0951) 1234567"]
#: Identifiers and numbers that are no phone numbers.
NOT_PHONES = [
    "1733212345678",  # a millisecond timestamp
    "1733212345",  # a second timestamp
    "20240623001",  # a day and a sequence number
    "640106001001",  # a community code
    "640106001001-C001-B003",  # a registered building
    "139123456789",  # 12 digits
    "1391234567890",  # 13 digits
    "1391234567",  # 10 digits
    "12912345678",  # 12x is no mobile prefix
    "20241231",
    "2024-12-31",
    "1733212345-1",
    "evt-20240623001",
    "2024-0623-12345678",  # a day and a serial after a dash: no landline
    "640106:20240623:4252",
    "36.6",
]


@pytest.mark.parametrize("spelled", MOBILES)
def test_a_mobile_number_is_masked_whole_in_free_text(spelled: str) -> None:
    assert mask_phone_numbers(f"患者王建国(电话{spelled}, 住3号楼2单元501)") == (
        f"患者王建国(电话{PHONE_MASK}, 住3号楼2单元501)"
    )
    assert mask_identifiers(f"手机{spelled}") == f"手机{PHONE_MASK}"


@pytest.mark.parametrize("spelled", MOBILES)
def test_an_identifier_holding_a_mobile_number_is_found(spelled: str) -> None:
    assert contains_mobile_number(spelled)
    assert contains_mobile_number(f"case-{spelled}")
    assert contains_mobile_number(f"/640106001001/{spelled}")
    assert contains_mobile_number(f"tel{spelled}")


@pytest.mark.parametrize("number", LANDLINES)
def test_a_landline_is_masked_in_free_text_but_not_refused_in_an_identifier(number: str) -> None:
    assert mask_phone_numbers(f"座机{number}。") == f"座机{PHONE_MASK}。"
    assert not contains_mobile_number(number)


@pytest.mark.parametrize("text", NOT_PHONES)
def test_ordinary_numbers_are_no_phone_numbers(text: str) -> None:
    assert mask_identifiers(text) == text
    assert not contains_mobile_number(text)
    assert not contains_mobile_number(f"/640106001001/{text}")


def test_a_hexadecimal_token_is_no_phone_number_in_an_identifier() -> None:
    # An 11-digit run starting 1[3-9] is in about one uuid4().hex in 650.
    assert not contains_mobile_number(f"a{MOBILE}f0e1d2c3b4a59687a6b5c4d3")
    assert not contains_mobile_number(f"{MOBILE}abcdef0123456789abcdef")
    assert not contains_mobile_number(f"8f3e2a1b-0c4d-4e5f-9a8b-c{MOBILE}")
    assert all(not contains_mobile_number(uuid.uuid4().hex) for _ in range(20_000))


def test_a_resident_id_is_masked_as_such_not_as_a_phone_number() -> None:
    number = "11010519491231002X"
    assert mask_identifiers(f"{number} {MOBILE}") == f"[redacted-id] {PHONE_MASK}"


def test_the_mask_is_never_longer_than_the_number() -> None:
    assert len(PHONE_MASK) <= min(len(n) for n in [MOBILE, "010-1234567"])
    assert mask_phone_numbers(PHONE_MASK) == PHONE_MASK


_prefixes = st.sampled_from(["", "+86", "86", "0086", "+86 "])
_groupings = st.sampled_from([("", ""), ("-", "-"), (" ", " "), ("", " ")])


@given(
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
    _prefixes,
    _groupings,
    st.booleans(),
    st.text(max_size=6),
    st.text(max_size=6),
)
def test_every_spelling_of_a_mobile_number_is_masked(
    second: str,
    rest: str,
    prefix: str,
    grouping: tuple[str, str],
    full_width: bool,
    before: str,
    after: str,
) -> None:
    number = f"1{second}{rest}"
    spelled = f"{prefix}{number[:3]}{grouping[0]}{number[3:7]}{grouping[1]}{number[7:]}"
    if full_width:
        spelled = spelled.translate(FULL_WIDTH)
    before = before.rstrip("0123456789０１２３４５６７８９+") + " "
    after = " " + after
    masked = mask_phone_numbers(f"{before}{spelled}{after}")
    assert masked == f"{before}{PHONE_MASK}{after}"


@given(st.integers(0, 10**30))
def test_a_run_of_other_than_eleven_digits_is_left_alone(value: int) -> None:
    text = str(value)
    if len(text) in (11, 13, 15):  # 11 digits, or +86/0086 and 11 digits: may be one
        return
    assert mask_phone_numbers(f"id {text}") == f"id {text}"
