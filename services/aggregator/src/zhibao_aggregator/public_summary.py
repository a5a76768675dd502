"""Public summaries: a unit's key daily figures for anyone, small counts suppressed.

The read side's figures of every published unit (levels down to
``ZHIBAO_PUBLIC_MIN_LEVEL``) in the unit's hierarchy are read for the day and
suppressed together (``zhibao_aggregator.domain.public``), then the asked
unit and its published children are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from zhibao_aggregator.domain.public import hidden_counts, public_figures
from zhibao_aggregator.reader import Figures, RollupReader
from zhibao_shared.hierarchy import CODE_LENGTH, Level, Unit


class NotPublic(LookupError):
    """The unit exists but its level has no public summary."""


@dataclass(frozen=True)
class PublicSummaries:
    """Builds public summaries from the read side."""

    reader: RollupReader
    threshold: int
    min_level: Level

    def is_public(self, unit: Unit) -> bool:
        """True for units at or above the lowest public level."""
        return CODE_LENGTH[unit.level] <= CODE_LENGTH[self.min_level]

    def _tree(self, root: Unit) -> tuple[list[Unit], dict[str, tuple[str, ...]]]:
        """The published units under ``root`` (itself included) and how they nest."""
        units, groups, todo = [root], {}, [root.code]
        while todo:
            parent = todo.pop()
            public = [c for c in self.reader.registry.children(parent) if self.is_public(c)]
            if public:
                groups[parent] = tuple(c.code for c in public)
                units += public
                todo += [c.code for c in public]
        return units, groups

    async def summary(self, code: str, day: date) -> dict[str, Any]:
        """The unit's and its published children's public figures for ``day``."""
        unit = self.reader.unit(code)
        if not self.is_public(unit):
            raise NotPublic(code)
        units, groups = self._tree(self.reader.registry.path(code)[0])
        figures: dict[str, Figures] = {
            u.code: await self.reader.figures(u.code, day) for u in units
        }
        hidden = hidden_counts(figures, groups, self.threshold)

        def entry(shown: Unit) -> dict[str, Any]:
            described = {k: getattr(shown, k) for k in ("code", "name", "name_en")}
            return {
                **described,
                "level": shown.level.value,
                "figures": public_figures(shown.code, figures[shown.code], hidden),
            }

        children = [c for c in self.reader.registry.children(code) if self.is_public(c)]
        return {
            **entry(unit),
            "date": day.isoformat(),
            "threshold": self.threshold,
            "children": [entry(c) for c in children],
        }
