"""Graded response: levels, the playbook of measures per level, and the tasks it plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from zhibao_shared.hierarchy import Registry, Unit
from zhibao_shared.resident_id import free_text
from zhibao_shared.task_events import TASK_KIND


class ResponseLevel(StrEnum):
    """A declared response level: the warning colours of the national emergency plan."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"
    #: Lifted: no response level (closes the open tasks of the previous one).
    NONE = "none"


#: Red to blue are grades I (particularly serious) to IV (ordinary).
GRADES: dict[ResponseLevel, str | None] = {
    ResponseLevel.RED: "I",
    ResponseLevel.ORANGE: "II",
    ResponseLevel.YELLOW: "III",
    ResponseLevel.BLUE: "IV",
    ResponseLevel.NONE: None,
}


class AppliesTo(StrEnum):
    """Which units a measure's tasks go to."""

    #: The declared unit itself: one task.
    UNIT = "unit"
    #: Each child of the declared unit in the registry (a community's: its named compounds).
    CHILDREN = "children"
    #: Each compound named in the declaration (a community's compounds): one task each.
    COMPOUNDS = "compounds"


class Measure(BaseModel):
    """One measure a level requires."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(pattern=TASK_KIND)
    applies_to: AppliesTo
    deadline_hours: float = Field(gt=0, le=24 * 90, description="Due this long after declaring")
    description: Annotated[str, Field(max_length=200), AfterValidator(free_text)] = ""


class Playbook(BaseModel):
    """The measures of each level (every level listed, an empty list allowed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    levels: dict[ResponseLevel, tuple[Measure, ...]]

    @model_validator(mode="after")
    def _every_level(self) -> Playbook:
        missing = [
            level.value
            for level in ResponseLevel
            if level is not ResponseLevel.NONE and level not in self.levels
        ]
        if missing:
            raise ValueError(f"levels missing: {', '.join(missing)}")
        if self.levels.get(ResponseLevel.NONE):
            raise ValueError("level 'none' (lifted) can have no measures")
        return self

    def measures(self, level: ResponseLevel) -> tuple[Measure, ...]:
        """The measures a level requires (none when lifted)."""
        return self.levels.get(level, ())


@dataclass(frozen=True)
class PlannedTask:
    """A task a declaration issues: for which measure, where, by when."""

    measure: int
    kind: str
    unit: str
    compound: str | None
    due: datetime


def plan(
    measures: tuple[Measure, ...],
    unit: Unit,
    registry: Registry,
    compounds: tuple[str, ...],
    declared_at: datetime,
) -> list[PlannedTask]:
    """The tasks declaring a level with these measures issues, in measure order."""
    tasks: list[PlannedTask] = []
    for index, measure in enumerate(measures):
        due = declared_at + timedelta(hours=measure.deadline_hours)
        for target, compound in _targets(measure.applies_to, unit, registry, compounds):
            tasks.append(PlannedTask(index, measure.kind, target, compound, due))
    return tasks


def _targets(
    applies_to: AppliesTo, unit: Unit, registry: Registry, compounds: tuple[str, ...]
) -> list[tuple[str, str | None]]:
    if applies_to is AppliesTo.UNIT:
        return [(unit.code, None)]
    children = registry.children(unit.code)
    if applies_to is AppliesTo.CHILDREN and children:
        return [(child.code, None) for child in children]
    return [(unit.code, compound) for compound in compounds]
