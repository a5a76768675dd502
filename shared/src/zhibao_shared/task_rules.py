"""What a community may not do with its task, one rule each, wherever the task changes.

A task changes two ways: a result reported through intake (``zhibao.task_result.v1``,
judged there and applied by the response service) and the response service's
``POST /v1/tasks/{id}/state``. Both ask these rules, so neither way is a way around
the other.
"""

from __future__ import annotations

from zhibao_shared.hierarchy import district_of

#: The outcome (and task state) that completes a task, and the method a visit is.
DONE = "done"
VISIT = "visit"


def visit_missing(requires_visit: bool, outcome: str, method: str | None) -> bool:
    """True when ``outcome`` would complete a task whose kind requires a visit
    (``ZHIBAO_RESPONSE_VISIT_REQUIRED_KINDS``) without one: by phone, or with no method
    at all (the state route records none). Seed 002: phone-only "verifications" of close
    contacts' companions were a known failure."""
    return requires_visit and outcome == DONE and method != VISIT


def transfer_leaves_district(unit: str, to: str) -> bool:
    """True when moving a task from ``unit`` to the community ``to`` takes it out of its
    district: out of sight of that district's command centre and of its partition (its
    lists, roll-ups and alerts). A community may not; a command centre covering ``to``
    may."""
    return district_of(to) != district_of(unit)
