"""Tasks pushed down to communities: what a valid task is and how its state may change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from zhibao_response.domain.texts import Label
from zhibao_shared.events import ReportedPerson
from zhibao_shared.hierarchy import Registry, district_of
from zhibao_shared.task_events import TASK_KIND, TaskState
from zhibao_shared.task_rules import transfer_leaves_district, visit_missing

#: States a task is still open in (overdue checks apply, it can change).
OPEN_STATES = frozenset({TaskState.ISSUED, TaskState.ACCEPTED})
#: What a community may set a task to, from each open state.
_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.ISSUED: frozenset(
        {
            TaskState.ACCEPTED,
            TaskState.DONE,
            TaskState.UNREACHABLE,
            TaskState.REFUSED,
            TaskState.TRANSFERRED,
        }
    ),
    TaskState.ACCEPTED: frozenset(
        {TaskState.DONE, TaskState.UNREACHABLE, TaskState.REFUSED, TaskState.TRANSFERRED}
    ),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Contact(_Strict):
    """How to reach the person (kept encrypted, shown only to the community and the issuer)."""

    name: str | None = Field(default=None, min_length=1, max_length=64, repr=False)
    phone: str | None = Field(
        default=None, pattern=r"^\+?[0-9][0-9 -]{2,23}$", max_length=24, repr=False
    )
    address: str | None = Field(default=None, min_length=1, max_length=200, repr=False)


class TaskIn(_Strict):
    """One task as a command centre issues it."""

    unit: str = Field(pattern=r"^\d{12}$", description="The community the task is for")
    kind: str = Field(pattern=TASK_KIND, description="verify_contact, disinfect, deliver, ...")
    due: AwareDatetime = Field(description="When it must be done (RFC 3339, with an offset)")
    person: ReportedPerson | None = Field(default=None, repr=False)
    contact: Contact | None = Field(default=None, repr=False)
    note: str | None = Field(default=None, min_length=1, max_length=500, repr=False)
    compound: Label | None = Field(default=None, description="Residential compound, if any")


_BATCH = TypeAdapter(list[TaskIn])


@dataclass(frozen=True)
class Problem:
    """Why one task of a batch was refused: where and which rule (never the value)."""

    index: int
    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form in a 422 answer."""
        return {
            "index": self.index,
            "field": self.field,
            "rule": self.rule,
            "message": self.message,
        }


def validate_batch(body: Any, registry: Registry) -> tuple[list[TaskIn], list[Problem]]:
    """The tasks of a request body, or every problem found (all-or-nothing)."""
    if not isinstance(body, list):
        return [], [Problem(-1, "", "not_a_list", "the body must be a JSON list of tasks")]
    try:
        tasks = _BATCH.validate_python(body)
    except ValidationError as exc:
        return [], [_problem(error) for error in exc.errors(include_input=False)]
    problems = [
        Problem(i, "unit", "unknown_community", "not a community of the registry")
        for i, task in enumerate(tasks)
        if not registry.is_community(task.unit)
    ]
    return ([], problems) if problems else (tasks, [])


def _problem(error: Any) -> Problem:
    location = list(error["loc"])
    index = location.pop(0) if location and isinstance(location[0], int) else -1
    parts = [str(part) for part in location]
    # the person union names its variant in the path (person.id_number.id_number)
    if len(parts) >= 3 and parts[0] == "person" and parts[1] in ("id_number", "ref"):
        del parts[1]
    return Problem(index, ".".join(parts), str(error["type"]), str(error["msg"]))


class ChangeRefused(ValueError):
    """A change of a task's state a community may not make."""


class InvalidTransition(ChangeRefused):
    """A state change the task's current state does not allow."""


class VisitRequired(ChangeRefused):
    """Done without a visit, for a task whose kind requires one."""


class TransferOutside(ChangeRefused):
    """A transfer to a community outside the district the task was issued in."""


def check_transition(current: TaskState, wanted: TaskState) -> None:
    """Raise :class:`InvalidTransition` unless a community may move ``current`` to ``wanted``."""
    allowed = _TRANSITIONS.get(current, frozenset())
    if wanted not in allowed:
        raise InvalidTransition(
            f"a task that is {current.value} cannot become {wanted.value}"
            + (f" (allowed: {', '.join(sorted(s.value for s in allowed))})" if allowed else "")
        )


def check_change(
    current: TaskState,
    wanted: TaskState,
    *,
    unit: str,
    kind: str,
    requires_visit: bool,
    method: str | None = None,
    to: str | None = None,
    reach: tuple[str, ...] = (),
) -> None:
    """Raise a :class:`ChangeRefused` unless the community ``unit`` may move its task of
    ``kind`` from ``current`` to ``wanted`` (by ``method``, to the community ``to``, by a
    caller whose scopes are ``reach``: one covering ``to`` may move it out of the district).

    The one check of both ways a task changes: the state route (no method) and a result
    reported through intake (its method), so neither gets round the other's rules.
    """
    check_transition(current, wanted)
    if visit_missing(requires_visit, wanted, method):
        raise VisitRequired(
            f"a {kind} task needs a visit to be done: report the result through intake "
            "(a zhibao.task_result.v1 event with method visit, as the worker page's "
            "result form sends it); this route records no visit"
        )
    if to is not None and transfer_leaves_district(unit, to) and not to.startswith(reach):
        raise TransferOutside(
            f"the task is with district {district_of(unit)}: a community may transfer it "
            f"within that district only, not to {to}; a command centre whose scope covers "
            f"{to} (the city's, say) may move it there"
        )


def is_open(state: TaskState) -> bool:
    """True while the task is still to be done."""
    return state in OPEN_STATES


def closes(state: TaskState) -> bool:
    """True when reaching ``state`` closes the task (a transfer re-issues it instead)."""
    return state not in OPEN_STATES and state is not TaskState.TRANSFERRED


def scopes_exactly(scopes: Sequence[str], unit: str) -> bool:
    """True when one of ``scopes`` is ``unit`` itself or lies inside it (the community's own
    token), as opposed to a scope above it (a street's or district's)."""
    return any(scope.startswith(unit) for scope in scopes)


def scopes_above(scopes: Sequence[str], unit: str) -> list[str]:
    """Those of ``scopes`` strictly above ``unit`` (a command centre's over it)."""
    return [scope for scope in scopes if unit.startswith(scope) and len(scope) < len(unit)]


def acting_level(scopes: Sequence[str], unit: str) -> str | None:
    """The highest of ``scopes`` covering ``unit`` (the level a token acts at there), or
    None when none covers it (a task a need raised: no command centre issued it)."""
    covering = [scope for scope in scopes if unit.startswith(scope)]
    return min(covering, key=len) if covering else None


def at_or_above(scopes: Sequence[str], unit: str, level: str | None) -> bool:
    """True when one of ``scopes`` lies above ``unit`` at the level of the scope ``level``
    or higher (any above when ``level`` is None: a task or point from before levels were
    kept): a street may not undo what its district or the city decided."""
    return any(level is None or len(scope) <= len(level) for scope in scopes_above(scopes, unit))


def may_change(scopes: Sequence[str], unit: str, issuer_level: str | None) -> bool:
    """True when a token may change the state of a task with ``unit``: the community's own,
    or a command centre at or above the level that issued the task."""
    return scopes_exactly(scopes, unit) or at_or_above(scopes, unit, issuer_level)
