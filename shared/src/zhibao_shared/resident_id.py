"""PRC resident identity number (居民身份证号码, GB 11643-1999) validation.

An 18-character number: 6-digit region code, 8-digit date of birth,
3-digit sequence and an ISO 7064 MOD 11-2 check character (0-9 or X).

Numbers are also recognised in disguise: full-width or other compatibility
digits (NFKC), the digits of other scripts (Tibetan, Mongolian, Arabic-Indic...)
and Chinese numerals (〇一二三..., 零壹贰叁...), a lower-case ``x``, and separators
or invisible characters between the digits (spaces, dashes, dots, underscores,
control characters, zero-width and other format characters, combining marks). See
:func:`undisguised`. Slashes, colons and commas are not dropped: a device's id such as
``640106:20240623:4252`` (a code, a day and a serial) would then read as a valid
number about once in eleven.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

_FORMAT = re.compile(r"^[1-9]\d{16}[\dX]$", re.ASCII)
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"
_EARLIEST_BIRTH = date(1880, 1, 1)
#: The first two digits of a plausible year of birth (a quick filter before the full check).
_CENTURIES = frozenset({"18", "19", "20"})
#: Anything shaped like a resident ID: 18 characters not inside a longer number.
RESIDENT_ID_SHAPE = re.compile(r"(?<!\d)[1-9]\d{16}[\dXx](?![\dXx])")
MASK = "[redacted-id]"
#: Longest ``person.id_number`` considered: 18 characters and room for separators.
MAX_DISGUISED_LENGTH = 64

#: Unicode categories dropped before looking for a number: spaces and line/paragraph
#: separators, controls, invisible format characters (U+200B-U+200D, U+2060, U+FEFF,
#: soft hyphen...), combining marks (U+034F, variation selectors) and dashes.
_DROPPED_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me", "Pd"})
#: Dots, the underscore and dash-like signs outside category Pd (minus, hyphen bullet,
#: the katakana prolonged sound mark), also dropped (NFKC folded full-width ones already).
_DROPPED_MARKS = frozenset("._·・。‧⋅−⁃ー")
#: Chinese numerals, everyday and financial, as digits.
_CHINESE_DIGITS = dict(zip("〇一二三四五六七八九", "0123456789", strict=True)) | dict(
    zip("零壹贰叁肆伍陆柒捌玖", "0123456789", strict=True)
)
_ASCII_DROPPED = "".join(
    c
    for c in map(chr, range(128))
    if c in _DROPPED_MARKS or unicodedata.category(c) in {"Cc", "Zs", "Pd"}
)
_ASCII_TABLE = str.maketrans({"x": "X"} | dict.fromkeys(_ASCII_DROPPED))
#: A run of digits that may hold a number (the check character X only ends it).
_RUN = re.compile(r"[0-9]{17,}X?")


class InvalidResidentId(ValueError):
    """Raised with a human-readable reason when a resident ID is not valid."""


def check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for 17 leading digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def _dropped(char: str) -> bool:
    return char in _DROPPED_MARKS or unicodedata.category(char) in _DROPPED_CATEGORIES


def _undisguised_with_origins(text: str) -> tuple[str, list[int]]:
    """:func:`undisguised` and, per character kept, its index in ``text``."""
    kept: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        for normal in unicodedata.normalize("NFKC", char):
            if not _dropped(normal):
                kept.append(_as_digit(normal))
                origins.append(index)
    return "".join(kept), origins


def _as_digit(char: str) -> str:
    """A kept character as a number is looked for in it: any script's digit or a Chinese
    numeral as an ASCII digit, ``x`` as ``X``."""
    if char == "x":
        return "X"
    if not char.isascii() and unicodedata.category(char) == "Nd":
        return str(unicodedata.digit(char))
    return _CHINESE_DIGITS.get(char, char)


def undisguised(text: str) -> str:
    """``text`` as a resident ID would be looked for in it: compatibility characters
    folded (NFKC: full-width digits and X), ``x`` upper-cased, and separators and
    invisible characters removed."""
    if text.isascii():
        return text.translate(_ASCII_TABLE)
    return _undisguised_with_origins(text)[0]


def _problem(candidate: str, today: date | None) -> str | None:
    """Why a candidate (already undisguised) is not a valid resident ID, or None."""
    if not _FORMAT.fullmatch(candidate):
        return "must be 18 characters: 17 digits and a check digit or X"
    try:
        born = date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:
        return "contains an impossible date of birth"
    if not _EARLIEST_BIRTH <= born <= (today or date.today()):
        return "has a date of birth outside the plausible range"
    if check_character(candidate[:17]) != candidate[17]:
        return "check digit does not match (ISO 7064 MOD 11-2)"
    return None


def normalize_resident_id(value: str, *, today: date | None = None) -> str:
    """Validate a resident ID and return it in canonical form (ASCII, upper-case X).

    A disguised number (full-width digits, separators, invisible characters)
    is undisguised first, so every spelling of one number gives the same
    canonical form. Raises InvalidResidentId naming what is wrong: length,
    format, date of birth or check digit. The message never repeats the number.
    """
    if len(value) > MAX_DISGUISED_LENGTH:
        raise InvalidResidentId(f"must be at most {MAX_DISGUISED_LENGTH} characters")
    candidate = undisguised(value).upper()
    problem = _problem(candidate, today)
    if problem is not None:
        raise InvalidResidentId(problem)
    return candidate


def _valid_windows(run: str) -> bool:
    """True when some 18 consecutive characters of a digit run are a valid resident ID."""
    return any(
        run[i] != "0"
        and run[i + 6 : i + 8] in _CENTURIES
        and _problem(run[i : i + 18], None) is None
        for i in range(len(run) - 17)
    )


def _too_short(text: str) -> bool:
    """True when ``text`` cannot spell 18 characters (NFKC may turn one into several)."""
    return len(text) < 18 and (text.isascii() or len(unicodedata.normalize("NFKC", text)) < 18)


def contains_resident_id(text: str) -> bool:
    """True when ``text`` holds a valid resident ID (format, date of birth, check digit),
    also in disguise (see :func:`undisguised`) or inside a longer run of digits.

    Used to refuse free-text fields (event ids, sources, labels) that would
    carry a resident's number past pseudonymisation. Numbers that are merely
    shaped like one (an 18-digit record number) do not count.
    """
    if _too_short(text):
        return False
    return any(
        len(run.group()) >= 18 and _valid_windows(run.group())
        for run in _RUN.finditer(undisguised(text))
    )


def mask_resident_ids(text: str) -> str:
    """``text`` with every resident ID replaced by ``[redacted-id]``.

    Masked: anything shaped like one (18 characters, valid or not), and every
    run of digits that holds a valid number in disguise (the whole run, from
    its first to its last character as written).
    """
    if not _too_short(text) and _RUN.search(undisguised(text)):
        text = _mask_disguised(text)
    return RESIDENT_ID_SHAPE.sub(MASK, text)


def masked_within(text: str, limit: int) -> str | None:
    """``text`` with resident IDs masked (:func:`mask_resident_ids`) when it is at most
    ``limit`` characters long; None for a longer one, which is not repeated at all.

    For submitted text an answer, a log line or the audit trail repeats: masking costs
    time in proportion to the text (a 2 MB event id held intake's event loop for two
    seconds), and a text cut before masking could leave most of a number in view.
    """
    return mask_resident_ids(text) if len(text) <= limit else None


def _mask_disguised(text: str) -> str:
    plain, origins = _undisguised_with_origins(text)
    spans = [
        (origins[run.start()], origins[run.end() - 1] + 1)
        for run in _RUN.finditer(plain)
        if len(run.group()) >= 18 and _valid_windows(run.group())
    ]
    for start, end in reversed(spans):
        text = text[:start] + MASK + text[end:]
    return text
