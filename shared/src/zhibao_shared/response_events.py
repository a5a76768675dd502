"""What the response service says on the bus about declared levels and epidemic points.

Published on the tasks stream beside the task messages
(:mod:`zhibao_shared.task_events`): ``zhibao.tasks.<district>.<unit>.level`` on every
declaration (lifting included; a unit above the district, the city or the province,
stands in its own district place: ``zhibao.tasks.6401.6401.level``) and
``zhibao.tasks.<district>.<community>.point`` when an epidemic point (疫点) is declared
or lifted. No personal data: units, compound and
building labels, times, and the declaring token's name.

Each message is a full snapshot of what it is about (a declaration is never changed; a
point changes only when lifted), so a consumer that stores it keyed by its id ends up
with the same rows whatever the order and however often messages are delivered.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from zhibao_shared.hierarchy import UNIT_CODE
from zhibao_shared.subjects import task_event_filters, task_subject
from zhibao_shared.tokens import NAME_MAX

ID = r"^[0-9a-f]{32}$"
COMMUNITY_CODE = r"^\d{12}$"
#: A response level as declared: the warning colours, grades I (red) to IV (blue).
DeclaredLevel = Literal["red", "orange", "yellow", "blue"]
LEVEL_EVENT = "level"
POINT_EVENT = "point"
_Label = Field(default=None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
_Author = Field(min_length=1, max_length=NAME_MAX, description="The declaring token's name")


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelMessage(_Message):
    """A response level declared for a unit (``level`` null: lifted)."""

    event: Literal["level_declared"] = "level_declared"
    declaration: str = Field(pattern=ID, description="The declaration's id")
    unit: str = Field(pattern=UNIT_CODE)
    level: DeclaredLevel | None = Field(description="red, orange, yellow, blue; null: lifted")
    number: int = Field(ge=1, description="1, 2, 3, ... per unit: the highest is in force")
    declared_at: AwareDatetime
    declared_by: str = _Author


class PointMessage(_Message):
    """An epidemic point (a compound and/or a building of a community), as it stands now."""

    event: Literal["point_declared", "point_lifted"]
    point: str = Field(pattern=ID, description="The point's id")
    unit: str = Field(pattern=COMMUNITY_CODE, description="The community it lies in")
    compound: str | None = _Label
    building: str | None = _Label
    start: AwareDatetime = Field(description="When the point took effect")
    declared_at: AwareDatetime
    declared_by: str = _Author
    lifted_at: AwareDatetime | None = None
    lifted_by: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)

    @model_validator(mode="after")
    def _consistent(self) -> PointMessage:
        if self.compound is None and self.building is None:
            raise ValueError("a point names a compound, a building or both")
        if (self.event == "point_lifted") != (self.lifted_at is not None):
            raise ValueError("lifted_at is given exactly when the point is lifted")
        return self


def level_subject(unit: str) -> str:
    """Subject of a unit's level declaration."""
    return task_subject(unit, LEVEL_EVENT)


def point_subject(community: str) -> str:
    """Subject of a point's declaration or lifting."""
    return task_subject(community, POINT_EVENT)


def response_filters(districts: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """Subject filters matching level and point messages (of some districts and the units
    above them, or all)."""
    return tuple(task_event_filters(districts, (LEVEL_EVENT, POINT_EVENT)))


def parse_response_message(subject: str, raw: bytes) -> LevelMessage | PointMessage:
    """Decode a level or point message by its subject's last token."""
    if subject.endswith(f".{LEVEL_EVENT}"):
        return LevelMessage.model_validate_json(raw)
    if subject.endswith(f".{POINT_EVENT}"):
        return PointMessage.model_validate_json(raw)
    raise ValueError(f"not a level or point subject: {subject}")
