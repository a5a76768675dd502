"""The personal data the privacy tests report, and how to look for it in bytes.

Every resident here has a valid ID number (ISO 7064 check digit) and a
Chinese name; none of the names occurs in the registry, the on-call sample or
the dashboard's assets, so finding one anywhere means it came from a report.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from datetime import date
from io import BytesIO
from urllib.parse import quote

from tests.support.events import resident_id
from zhibao_shared.resident_id import check_character


@dataclass(frozen=True)
class Resident:
    """A person a community reports: an ID number and a name."""

    id_number: str
    name: str


def _id_ending_in_x() -> str:
    """A valid ID number whose check character is X (reported in lower case below)."""
    for seq in range(1000):
        first17 = f"640106{date(1990, 6, 1):%Y%m%d}{seq:03d}"
        if check_character(first17) == "X":
            return first17 + "X"
    raise AssertionError("no sequence number gives check character X")


#: Reported in a fever screening, then as a confirmed case (an alert and a webhook page).
CONFIRMED = Resident(resident_id(born=date(1962, 11, 3), seq=417), "王秀英")
#: Reported with a lower-case x and blanks around the number.
LOWER_X = Resident(_id_ending_in_x(), "李建国")
#: Put in home isolation.
ISOLATED = Resident(resident_id(born=date(1978, 2, 14), seq=233), "张桂兰")
#: Named only by a local reference that is their name.
BY_NAME = Resident(resident_id(born=date(1985, 9, 9), seq=58), "赵丽华")
#: Named in CloudEvents extension attributes (``residentname``, ``residentid``).
IN_EXTENSIONS = Resident(resident_id(born=date(2001, 4, 30), seq=761), "刘志强")
#: Sent with a ``name`` next to the ID number (the contract refuses the extra field).
WITH_NAME_FIELD = Resident(resident_id(born=date(1949, 12, 31), seq=2), "陈淑珍")
#: Sent with a mistyped check digit (refused as invalid).
MISTYPED = Resident(resident_id(born=date(1993, 7, 21), seq=305), "孙玉兰")
#: A community system that uses the ID number as its record id (the event's ``id``).
AS_EVENT_ID = Resident(resident_id(born=date(1970, 1, 15), seq=889), "周德胜")
#: A community system that names the person as the CloudEvents ``subject`` (refused).
AS_SUBJECT = Resident(resident_id(born=date(1958, 8, 8), seq=146), "吴春梅")

RESIDENTS = (
    CONFIRMED,
    LOWER_X,
    ISOLATED,
    BY_NAME,
    IN_EXTENSIONS,
    WITH_NAME_FIELD,
    MISTYPED,
    AS_SUBJECT,
)
EVERYONE = (*RESIDENTS, AS_EVENT_ID)


def mistyped(id_number: str) -> str:
    """The ID number with a wrong check character."""
    wrong = "0" if id_number[-1] != "0" else "1"
    return id_number[:-1] + wrong


def needles(people: tuple[Resident, ...] = EVERYONE) -> dict[bytes, str]:
    """Byte patterns that betray a person, each with a description.

    An ID number in either case of X and its first 17 digits (a number cut or
    re-checked still identifies); a name as UTF-8, as JSON ``\\u`` escapes and
    percent-encoded (as a URL or a log of one would carry it).
    """
    found: dict[bytes, str] = {}
    for person in people:
        for variant in {person.id_number, person.id_number.lower(), person.id_number[:17]}:
            found[variant.encode()] = f"ID number of {person.name}"
        escaped = json.dumps(person.name)[1:-1]
        for variant in {
            person.name,
            escaped,
            escaped.upper().replace("\\U", "\\u"),
            quote(person.name),
        }:
            found[variant.encode()] = f"name {person.name}"
    return found


def leaks(blob: bytes, patterns: dict[bytes, str] | None = None) -> list[str]:
    """What ``blob`` betrays, with a little context around each find (empty: nothing)."""
    found = []
    for needle, what in (patterns or needles()).items():
        at = blob.find(needle)
        if at >= 0:
            context = blob[max(0, at - 60) : at + len(needle) + 60]
            found.append(f"{what}: …{context.decode('utf-8', 'replace')}…")
    return found


def unzipped(blob: bytes) -> bytes:
    """The concatenated members of a zip file (an .xlsx), so that it can be scanned."""
    with zipfile.ZipFile(BytesIO(blob)) as archive:
        return b"\n".join(archive.read(name) for name in archive.namelist())
