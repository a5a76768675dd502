"""Residents who need help: the key-person register (重点人群) and needs.

Two event types, reported to intake and published on the bus like the others
(:mod:`zhibao_shared.events` holds the envelope, the person forms and the unions):

* ``zhibao.keyperson.v1`` registers a person of a key group in a community, or
  removes them (``action``). The register is the latest action per person and
  category (a person may be in several groups).
* ``zhibao.need.v1``: a person needs help (food, medicine, the medical green
  channel, psychological support, other), ``normal`` or ``urgent``. The response
  service turns each into one task, tracked to fulfilment by the task results.

Only the category, the urgency and the place travel: no free text, so nothing
personal reaches the bus beyond the person's pseudonym. The place fields are those of
screening data: a registered place's id (``place``) and/or the compound, building and
grid labels; the published form adds the registered places intake resolved.

Neither type is correctable (:data:`zhibao_shared.events.CORRECTABLE_TYPES`): a
registration made in error is undone by ``action: remove``, a need by its task's result.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Generic, Literal

from pydantic import AwareDatetime, Field

from zhibao_shared.events import (
    EventType,
    P,
    Pseudonym,
    ReportedPerson,
    ReporterLevel,
    _Envelope,
    _Label,
    _PlaceRef,
    _RegisteredPlaces,
    _Strict,
)


class KeyPersonCategory(StrEnum):
    """The key groups a community keeps a register of (seed 003)."""

    ELDERLY_ALONE = "elderly_alone"
    DISABLED = "disabled"
    CHRONIC_MEDICINE = "chronic_medicine"
    PREGNANT = "pregnant"
    DIALYSIS = "dialysis"
    CHILD_UNATTENDED = "child_unattended"


class KeyPersonAction(StrEnum):
    """A registration (again: a change of its place) or a removal, per category."""

    REGISTER = "register"
    REMOVE = "remove"


class NeedCategory(StrEnum):
    """What a person needs; ``medical`` is the green channel (dialysis, pregnancy, emergencies)."""

    FOOD = "food"
    MEDICINE = "medicine"
    MEDICAL = "medical"
    PSYCHOLOGICAL = "psychological"
    OTHER = "other"


class NeedUrgency(StrEnum):
    """How soon a need must be met (the limits are the response service's settings)."""

    NORMAL = "normal"
    URGENT = "urgent"


#: The task kind a need of each category becomes (``need_<category>``).
NEED_TASK_KINDS: dict[NeedCategory, str] = {c: f"need_{c.value}" for c in NeedCategory}


def need_category_of(kind: str) -> NeedCategory | None:
    """The need category of a task kind (None: not a need's task)."""
    prefix, _, rest = kind.partition("_")
    if prefix != "need":
        return None
    return next((c for c in NeedCategory if c.value == rest), None)


def need_task_id(need_identity: str) -> str:
    """The id of the task a need becomes, from the need's identity (``dedup_key``): a
    redelivered or resent need names the same task, so it never makes a second one."""
    return hashlib.sha256(f"need {need_identity}".encode()).hexdigest()[:32]


class PlaceFields(_Strict):
    """Where the person lives: a registered place's id and/or the labels as reported."""

    place: _PlaceRef | None = None
    compound: _Label | None = None
    building: _Label | None = None
    grid: _Label | None = None


class PublishedPlaceFields(_RegisteredPlaces, PlaceFields):
    """The registered places intake resolved from ``place`` or by matching the labels."""


class KeyPersonData(PlaceFields, Generic[P]):
    """A key person registered in (or removed from) the community's register."""

    person: P
    category: KeyPersonCategory
    action: KeyPersonAction = KeyPersonAction.REGISTER


class NeedData(PlaceFields, Generic[P]):
    """A person's need; the event's ``time`` is when it was raised."""

    person: P
    category: NeedCategory
    urgency: NeedUrgency = NeedUrgency.NORMAL


class ReportedKeyPersonData(KeyPersonData[ReportedPerson]):
    """Key-person data as submitted to intake."""


class ReportedNeedData(NeedData[ReportedPerson]):
    """Need data as submitted to intake."""


class PublishedKeyPersonData(KeyPersonData[Pseudonym], PublishedPlaceFields):
    """Key-person data on the bus."""


class PublishedNeedData(NeedData[Pseudonym], PublishedPlaceFields):
    """Need data on the bus."""


class KeyPersonEvent(_Envelope, Generic[P]):
    """``zhibao.keyperson.v1``."""

    type: Literal[EventType.KEY_PERSON]
    data: KeyPersonData[P]


class NeedEvent(_Envelope, Generic[P]):
    """``zhibao.need.v1``."""

    type: Literal[EventType.NEED]
    data: NeedData[P]


class ReportedKeyPerson(KeyPersonEvent[ReportedPerson]):
    """A key-person registration or removal as a community system submits it."""

    data: ReportedKeyPersonData


class ReportedNeed(NeedEvent[ReportedPerson]):
    """A need as a community system submits it."""

    data: ReportedNeedData


class PublishedKeyPerson(KeyPersonEvent[Pseudonym]):
    """A key-person registration or removal as it travels on the bus."""

    # intake's attribution, as events' _Attribution (mypy's pydantic plugin refuses
    # that mixin beside a generic envelope of another module)
    reporter: str = Field(min_length=1, max_length=64)
    receivedat: AwareDatetime
    reporterlevel: ReporterLevel = None
    data: PublishedKeyPersonData


class PublishedNeed(NeedEvent[Pseudonym]):
    """A need as it travels on the bus."""

    reporter: str = Field(min_length=1, max_length=64)
    receivedat: AwareDatetime
    reporterlevel: ReporterLevel = None
    data: PublishedNeedData

    @property
    def task_kind(self) -> str:
        """The kind of the task the need becomes."""
        return NEED_TASK_KINDS[self.data.category]

    @property
    def task_id(self) -> str:
        """The id of the task the need becomes (:func:`need_task_id`)."""
        return need_task_id(self.dedup_key)
