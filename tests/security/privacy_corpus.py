"""Resident ID numbers in disguise, and a search that finds them in anything recorded.

The corpus is deterministic (a seeded generator over valid generated numbers):
full-width digits and X, other scripts' digits and Chinese numerals, a lower-case
x, dashes, spaces, dots, zero-width and other invisible characters, alone and mixed.
The search is independent of the code under test: it folds compatibility
characters (NFKC), decodes JSON ``\\uXXXX`` escapes and keeps only the digits (any
script's, and Chinese numerals), then looks for a number's first 17 digits, so any
spelling of a number is found.
"""

from __future__ import annotations

import json
import random
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import nats

from tests.support.events import resident_id
from zhibao_shared.subjects import AUDIT_STREAM

FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
#: Digits of other scripts (Tibetan, Mongolian, Arabic-Indic) and Chinese numerals.
SCRIPTS = [
    str.maketrans("0123456789", "".join(chr(zero + d) for d in range(10)))
    for zero in (0x0F20, 0x1810, 0x0660)
] + [
    str.maketrans("0123456789", "〇一二三四五六七八九"),
    str.maketrans("0123456789", "零壹贰叁肆伍陆柒捌玖"),
]
#: Characters that show nothing, or nothing but a gap, between digits.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u034f"]
SEPARATORS = [" ", "\u3000", "\u00a0", "-", "\u2013", "\u2014", "\uff0d", "\u2212", ".", "\uff0e"]
SEPARATORS += ["\u00b7", "\t"]


def numbers(count: int, seed: int = 14) -> list[str]:
    """``count`` distinct valid resident IDs, some ending in X."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < count:
        born = date(rng.randint(1930, 2015), rng.randint(1, 12), rng.randint(1, 28))
        region = rng.choice(["110105", "640106", "310104", "440305"])
        found[resident_id(region, born, rng.randint(0, 999))] = None
    with_x = next(
        resident_id("640106", date(1990, 5, seq % 28 + 1), seq)
        for seq in range(1000)
        if resident_id("640106", date(1990, 5, seq % 28 + 1), seq).endswith("X")
    )
    return [with_x, *list(found)[: count - 1]]


def _between(number: str, gap: Callable[[], str]) -> str:
    """``number`` with ``gap()`` between each two characters."""
    return number[0] + "".join(gap() + digit for digit in number[1:])


def _grouped(number: str, separator: str) -> str:
    return separator.join((number[:6], number[6:14], number[14:]))


def disguises(number: str, rng: random.Random) -> list[str]:
    """Spellings of ``number`` that a careless or evasive system might send."""
    spelled = [
        number.translate(FULL_WIDTH),
        number.lower(),
        _grouped(number, "-"),
        _grouped(number, " "),
        _grouped(number, "."),
        _grouped(number, "\u3000"),
        number[:6] + "-" + number[6:].translate(FULL_WIDTH).lower(),
    ]
    spelled += [number.translate(script) for script in SCRIPTS]
    spelled += [char.join(number) for char in INVISIBLE]
    spelled.append(_between(number.translate(FULL_WIDTH), lambda: rng.choice(INVISIBLE)))
    spelled.append(
        _between(number, lambda: rng.choice(["", *SEPARATORS, *INVISIBLE])).translate(
            FULL_WIDTH if rng.random() < 0.5 else {}
        )
    )
    return spelled


def corpus(count: int, seed: int = 14) -> list[tuple[str, str]]:
    """(clean number, disguised spelling) pairs over ``count`` numbers."""
    rng = random.Random(seed)
    return [(n, d) for n in numbers(count, seed) for d in disguises(n, rng)]


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_NOT_DIGIT = re.compile(r"[^0-9]")
_NUMERALS = {ord(c): str(d) for d, c in enumerate("〇一二三四五六七八九")} | {
    ord(c): str(d) for d, c in enumerate("零壹贰叁肆伍陆柒捌玖")
}


def digits_of(blob: bytes) -> str:
    """Every digit in ``blob``, in order, whatever the spelling (escapes and NFKC folded,
    any script's digits and Chinese numerals as ASCII digits)."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), blob.decode("utf-8", "replace"))
    folded = unicodedata.normalize("NFKC", text).translate(_NUMERALS)
    ascii_digits = "".join(
        str(unicodedata.digit(c)) if c.isdigit() and not c.isascii() else c for c in folded
    )
    return _NOT_DIGIT.sub("", ascii_digits)


def leaked(surfaces: dict[str, bytes], clean: Iterable[str]) -> list[tuple[str, str]]:
    """(surface, number) for every number whose first 17 digits appear in a surface."""
    found = []
    for name, blob in surfaces.items():
        digits = digits_of(blob)
        found += [(name, number) for number in clean if number[:17] in digits]
    return found


async def stream_surfaces(url: str) -> dict[str, bytes]:
    """Every message of every JetStream stream: subject, headers and payload."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        found: dict[str, bytes] = {}
        for info in await js.streams_info():
            name, state = str(info.config.name), info.state
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                msg = await js.get_msg(name, seq)
                headers = "".join(f"{k}: {v}\n" for k, v in (msg.headers or {}).items())
                found[f"stream {name} #{seq}"] = f"{msg.subject}\n{headers}\n".encode() + (
                    msg.data or b""
                )
        return found
    finally:
        await client.close()


async def audit_lines(url: str) -> list[dict[str, Any]]:
    """The audit trail's records (JSON lines, several to a message)."""
    surfaces = await stream_surfaces(url)
    return [
        json.loads(line)
        for name, blob in surfaces.items()
        if name.startswith(f"stream {AUDIT_STREAM} ")
        for line in blob.split(b"\n\n", 1)[1].splitlines()
    ]


def file_surfaces(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots`` (data directory, JetStream store)."""
    return {f"file {p}": p.read_bytes() for root in roots for p in root.rglob("*") if p.is_file()}


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")
