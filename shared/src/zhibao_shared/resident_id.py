"""PRC resident identity number (居民身份证号码, GB 11643-1999) validation.

An 18-character number: 6-digit region code, 8-digit date of birth,
3-digit sequence and an ISO 7064 MOD 11-2 check character (0-9 or X).
"""

from __future__ import annotations

import re
from datetime import date

_FORMAT = re.compile(r"^[1-9]\d{16}[\dX]$")
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"
_EARLIEST_BIRTH = date(1880, 1, 1)
#: Anything shaped like a resident ID: 18 characters not inside a longer number.
RESIDENT_ID_SHAPE = re.compile(r"(?<!\d)[1-9]\d{16}[\dXx](?![\dXx])")
MASK = "[redacted-id]"


class InvalidResidentId(ValueError):
    """Raised with a human-readable reason when a resident ID is not valid."""


def check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for 17 leading digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalize_resident_id(value: str, *, today: date | None = None) -> str:
    """Validate a resident ID and return it in canonical form (upper-case X).

    Raises InvalidResidentId naming what is wrong: format, date of birth or
    check digit. The message never repeats the number itself.
    """
    candidate = value.strip().upper()
    if not _FORMAT.fullmatch(candidate):
        raise InvalidResidentId("must be 18 characters: 17 digits and a check digit or X")
    try:
        born = date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:
        raise InvalidResidentId("contains an impossible date of birth") from None
    if not _EARLIEST_BIRTH <= born <= (today or date.today()):
        raise InvalidResidentId("has a date of birth outside the plausible range")
    if check_character(candidate[:17]) != candidate[17]:
        raise InvalidResidentId("check digit does not match (ISO 7064 MOD 11-2)")
    return candidate


def contains_resident_id(text: str) -> bool:
    """True when ``text`` contains a valid resident ID (format, date of birth, check digit).

    Used to refuse free-text fields (event ids, sources, labels) that would
    carry a resident's number past pseudonymisation. Numbers that are merely
    shaped like one (an 18-digit record number) do not count.
    """
    for match in RESIDENT_ID_SHAPE.finditer(text):
        try:
            normalize_resident_id(match.group())
        except InvalidResidentId:
            continue
        return True
    return False


def mask_resident_ids(text: str) -> str:
    """``text`` with everything shaped like a resident ID replaced by ``[redacted-id]``."""
    return RESIDENT_ID_SHAPE.sub(MASK, text)
