"""One outbreak's course as the model follows it: its cases and its response loop's state.

Pure bookkeeping (no randomness, no I/O): the model decides, this remembers and
answers when the epidemic point and the level are due to be lifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outbreak:
    """A building outbreak in one community, from day index ``start``.

    ``prefix`` names its tasks apart from another outbreak's (``""`` for the first,
    ``outbreak2-`` for the second, …).
    """

    community: str
    start: int
    prefix: str = ""
    case_days: set[int] = field(default_factory=set)  # days with a new case in the community
    declared_day: int | None = None
    lifted: bool = False
    point: str | None = None  # the compound declared an epidemic point
    point_lifted: bool = False
    sealed: str | None = None  # the outbreak's compound (its id when registered)
    restricted_from: int | None = None  # the day its first cases are confirmed

    @classmethod
    def numbered(cls, ordinal: int, community: str, start: int) -> Outbreak:
        """The ``ordinal``-th outbreak (0 for the first) of a run."""
        return cls(community, start, "" if ordinal == 0 else f"outbreak{ordinal + 1}-")

    @property
    def tasks_key(self) -> str:
        """The simulator's key stem of its level's playbook tasks (``declared``)."""
        return f"{self.prefix}declared"

    def _last_case(self, index: int) -> int:
        assert self.declared_day is not None
        return max({self.declared_day} | {d for d in self.case_days if d <= index})

    def point_due(self, index: int, quiet_days: int) -> bool:
        """The point's planned lifting day: ``quiet_days`` after the last case."""
        if self.point is None or self.point_lifted or self.declared_day is None:
            return False
        return index - self._last_case(index) >= quiet_days

    def restricted(self, index: int, quiet_days: int) -> bool:
        """The community lives under the outbreak's restrictions on day ``index``: from
        its first confirmed cases until more than ``quiet_days`` whole days without one
        (when the loop lifts its level; with or without the loop)."""
        start = self.restricted_from
        if start is None or index < start:
            return False
        last = max({start} | {d for d in self.case_days if d <= index})
        return index - last <= quiet_days

    def level_due(self, index: int, quiet_days: int) -> bool:
        """The level is lifted after more than ``quiet_days`` whole days without a case."""
        if self.declared_day is None or self.lifted or index <= self.declared_day:
            return False
        return index - self._last_case(index) > quiet_days
