"""Who may publish or subscribe where, read from :mod:`zhibao_shared.bus_access`.

Subjects follow NATS wildcard rules: ``*`` stands for one part, ``>`` for one
or more trailing parts. A permission *covers* a subject pattern when every
subject the pattern matches is also matched by the permission.
"""

from __future__ import annotations

from collections.abc import Iterable

from zhibao_shared.bus_access import BusUser


def covers(allowed: str, pattern: str) -> bool:
    """True when every subject matched by ``pattern`` is matched by ``allowed``."""
    mine, theirs = allowed.split("."), pattern.split(".")
    for index, part in enumerate(mine):
        if part == ">":
            return len(theirs) > index
        if index >= len(theirs):
            return False
        other = theirs[index]
        if part == "*" and other != ">":
            continue
        if part != other:
            return False
    return len(mine) == len(theirs)


def matches(pattern: str, subject: str) -> bool:
    """True when the concrete ``subject`` matches the wildcard ``pattern``."""
    return covers(pattern, subject)


def overlap(first: str, second: str) -> str | None:
    """The subjects matched by both patterns, as one pattern; None when there are none."""
    mine, theirs = first.split("."), second.split(".")
    out: list[str] = []
    for index, part in enumerate(mine):
        if part == ">":
            return ".".join(out + theirs[index:]) if len(theirs) > index else None
        if index >= len(theirs):
            return None
        other = theirs[index]
        if other == ">":
            return ".".join(out + mine[index:])
        if part != other and "*" not in (part, other):
            return None
        out.append(other if part == "*" else part)
    return ".".join(out) if len(mine) == len(theirs) else None


def _within(allowed: Iterable[str], pattern: str) -> list[str]:
    """The parts of ``pattern`` that the ``allowed`` subjects permit."""
    parts = (overlap(a, pattern) for a in allowed)
    return [part for part in parts if part is not None]


def publishable(user: BusUser, pattern: str) -> list[str]:
    """The parts of ``pattern`` ``user`` may publish on (empty: none)."""
    return [pattern] if user.publish is None else _within(user.publish, pattern)


def subscribable(user: BusUser, pattern: str) -> list[str]:
    """The parts of ``pattern`` ``user`` may subscribe to (empty: none)."""
    return [pattern] if user.subscribe is None else _within(user.subscribe, pattern)


def may_pull(user: BusUser, stream: str) -> bool:
    """True when ``user`` may read ``stream`` through a durable consumer of its own."""
    if user.publish is None:
        return True
    prefix = f"$JS.API.CONSUMER.MSG.NEXT.{stream}."
    return any(a.startswith(prefix) for a in user.publish)


def names(users: Iterable[BusUser]) -> list[str]:
    """The users' names, in table order."""
    return [user.name for user in users]
