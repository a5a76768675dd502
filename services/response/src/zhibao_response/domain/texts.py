"""The free text command centres and workers type: shown in the clear and carried on the
bus, so held to intake's rule (:func:`zhibao_shared.resident_id.free_text`: a resident ID
is refused, phone numbers are masked)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from zhibao_shared.resident_id import free_text

#: Anything but NUL (which PostgreSQL cannot store).
NO_NUL = r"^[^\x00]*$"
#: A short label (a compound, a building, a worker's name): one line, no control characters.
Label = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"),
    AfterValidator(free_text),
]
#: Why something was declared or lifted.
Reason = Annotated[
    str, Field(min_length=1, max_length=500, pattern=NO_NUL), AfterValidator(free_text)
]
