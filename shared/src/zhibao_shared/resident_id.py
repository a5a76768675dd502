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

Mainland China phone numbers are found here too, by the same folding of digits
(:func:`mask_phone_numbers`, :func:`contains_mobile_number`, and
:func:`mask_identifiers` for both kinds): a mobile number is ``1[3-9]`` and nine more
digits, an 11-digit run exactly (not inside a longer one), optionally after ``+86``,
``0086`` or ``86`` and grouped 3-4-4 by a space or dash; a landline is an area code
(``010``, ``02x``, ``0xxx``) with a dash, or in brackets, before 7 or 8 digits. Phone
numbers have no check digit, so separators are not read through as freely as for a
resident ID: ``1733212345-1`` stays a device's id.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
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

#: Never longer than the shortest number it replaces (11 characters), so a masked label or
#: reason still fits its length limit when a consumer reads it back.
PHONE_MASK = "[phone]"
#: A mainland mobile number: 1[3-9] and nine more digits, grouped 3-4-4 or not, perhaps
#: after the country code (``+86``, ``0086``, ``86``, glued on or with a space or dash).
_MOBILE = r"(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}"
#: An area code (010, 02x, 0xxx) with a dash or in brackets, then 7 or 8 digits.
_AREA = r"0(?:10|2[0-9]|[3-9][0-9]{2})"
_LANDLINE = rf"(?:{_AREA}-|\({_AREA}\) ?)[1-9][0-9]{{6,7}}"
#: Not inside a longer run of digits; a landline not after a dash either (``2024-0623-...``).
MOBILE_SHAPE = re.compile(rf"(?<![0-9]){_MOBILE}(?![0-9])", re.ASCII)
PHONE_SHAPE = re.compile(rf"(?<![0-9])(?:{_MOBILE}|(?<!-){_LANDLINE})(?![0-9])", re.ASCII)
#: A UUID's or a hash's token: hexadecimal digits, a letter among them.
_HEX_TOKEN = re.compile(r"(?=.*[a-fA-F])[0-9a-fA-F]+", re.ASCII)
_GROUPING = str.maketrans("", "", "+- ")
#: Characters that may spell a digit before folding: the fewest a phone number needs.
_DIGITISH = re.compile(r"[\d〇一二三四五六七八九零壹贰叁肆伍陆柒捌玖]")
_PHONE_DIGITS = 10
#: Invisible characters dropped before looking for a phone number (spaces and dashes
#: are kept: they may only group its digits 3-4-4).
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Me"})


class InvalidResidentId(ValueError):
    """Raised with a human-readable reason when a resident ID is not valid."""


def check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for 17 leading digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def _dropped(char: str) -> bool:
    return char in _DROPPED_MARKS or unicodedata.category(char) in _DROPPED_CATEGORIES


def _as_phone_character(char: str) -> str | None:
    """A character as a phone number is looked for (None: dropped): invisible ones
    dropped, any dash a ``-``, any space a `` ``, digits as for a resident ID."""
    category = unicodedata.category(char)
    if category in _INVISIBLE_CATEGORIES:
        return None
    if category == "Pd":
        return "-"
    if category == "Zs":
        return " "
    return _as_digit(char)


def _as_id_character(char: str) -> str | None:
    return None if _dropped(char) else _as_digit(char)


def _undisguised_with_origins(
    text: str, fold: Callable[[str], str | None] = _as_id_character
) -> tuple[str, list[int]]:
    """:func:`undisguised` (or another ``fold`` of each character after NFKC, None
    dropping it) and, per character kept, its index in ``text``."""
    kept: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        for normal in unicodedata.normalize("NFKC", char):
            folded = fold(normal)
            if folded is not None:
                kept.append(folded)
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
    """``text`` with identifiers masked (:func:`mask_identifiers`) when it is at most
    ``limit`` characters long; None for a longer one, which is not repeated at all.

    For submitted text an answer, a log line or the audit trail repeats: masking costs
    time in proportion to the text (a 2 MB event id held intake's event loop for two
    seconds), and a text cut before masking could leave most of a number in view.
    """
    return mask_identifiers(text) if len(text) <= limit else None


def _phone_spans(text: str, shape: re.Pattern[str]) -> list[tuple[int, int]]:
    """Where in ``text`` (as written) the phone numbers of ``shape`` are."""
    if text.isascii():
        return [match.span() for match in shape.finditer(text)]
    if len(_DIGITISH.findall(text)) < _PHONE_DIGITS:
        return []
    plain, origins = _undisguised_with_origins(text, _as_phone_character)
    return [
        (origins[match.start()], origins[match.end() - 1] + 1) for match in shape.finditer(plain)
    ]


def _in_hex_token(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is part of a hexadecimal token with a letter in it
    (the ASCII letters and digits around it): a UUID's or a hash's, not a phone's."""
    while start > 0 and text[start - 1].isascii() and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isascii() and text[end].isalnum():
        end += 1
    token = text[start:end].translate(_GROUPING)
    return _HEX_TOKEN.fullmatch(token) is not None


def contains_mobile_number(text: str) -> bool:
    """True when an identifier (an event's ``id``, ``source``) holds a mainland mobile
    number (see the module's docstring), also in full-width or other digits.

    Landlines do not count (``0623-12345678``, a day and a serial, looks like one), nor
    a number inside a hexadecimal token with a letter (``...-a13912345678``): about one
    ``uuid4().hex`` in 650 has an 11-digit run starting ``1[3-9]``."""
    return any(
        not _in_hex_token(text, start, end) for start, end in _phone_spans(text, MOBILE_SHAPE)
    )


def mask_phone_numbers(text: str) -> str:
    """``text`` with every mainland mobile and landline number replaced by
    ``[phone]`` (as written: full-width digits and separators included)."""
    for start, end in reversed(_phone_spans(text, PHONE_SHAPE)):
        text = text[:start] + PHONE_MASK + text[end:]
    return text


def mask_identifiers(text: str) -> str:
    """``text`` with resident IDs (:func:`mask_resident_ids`) and phone numbers
    (:func:`mask_phone_numbers`) masked: what logs, errors and the audit trail show."""
    return mask_phone_numbers(mask_resident_ids(text))


RESIDENT_ID_REFUSED = (
    "must not contain a resident ID number (only person.id_number is pseudonymised); "
    "use an identifier that does not name the person"
)


def free_text(text: str) -> str:
    """Free text that travels or is shown in the clear (labels, reasons): a resident ID is
    refused (ValueError, :data:`RESIDENT_ID_REFUSED`), phone numbers are masked
    (``[phone]``, never longer than the number, so the text keeps within its limit).
    One rule for every service that takes such text (a pydantic ``AfterValidator``)."""
    if contains_resident_id(text):
        raise ValueError(RESIDENT_ID_REFUSED)
    return mask_phone_numbers(text)


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
