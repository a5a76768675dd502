"""Grid workers' workload per unit, from the places registry (pure).

Seed 004 (Yinchuan's standard): one grid worker (网格员) per 300–500 households. A
community's figure counts its grids' workers and households; a street's, district's...
the sums over the communities under it. A grid is over the standard when its households
exceed the upper bound (one worker serves one grid).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from zhibao_shared.hierarchy import ancestors
from zhibao_shared.places import Place

#: Households per grid worker, lower and upper bound of the standard.
STANDARD: tuple[int, int] = (300, 500)


@dataclass(frozen=True)
class GridWorkload:
    """A unit's grid workers, the households of its grids, and grids over the standard."""

    grids: int = 0
    workers: int = 0
    households: int = 0
    grids_over_standard: int = 0

    def __add__(self, other: GridWorkload) -> GridWorkload:
        return GridWorkload(
            self.grids + other.grids,
            self.workers + other.workers,
            self.households + other.households,
            self.grids_over_standard + other.grids_over_standard,
        )

    @property
    def households_per_worker(self) -> float | None:
        """Households per grid worker (None: no worker)."""
        return round(self.households / self.workers, 1) if self.workers else None

    def as_json(self) -> dict[str, object]:
        """The figure as the API shows it."""
        return {
            "grids": self.grids,
            "workers": self.workers,
            "households": self.households,
            "households_per_worker": self.households_per_worker,
            "grids_over_standard": self.grids_over_standard,
            "standard": list(STANDARD),
            # How many workers the standard asks for (seed 004: "应配备网格员516—860名").
            "workers_needed": [
                -(-self.households // STANDARD[1]),
                -(-self.households // STANDARD[0]),
            ],
        }


def of_community(grids: Iterable[Place]) -> GridWorkload:
    """A community's workload from its grids: each grid's worker is one post (display
    names are not identities: two workers may share one)."""
    listed = list(grids)
    households = sum(g.households or 0 for g in listed)
    workers = sum(1 for g in listed if g.worker)
    over = sum(1 for g in listed if (g.households or 0) > STANDARD[1])
    return GridWorkload(len(listed), workers, households, over)


def by_unit(grids_per_community: dict[str, list[Place]]) -> dict[str, GridWorkload]:
    """Every community's workload and its sum at each unit above it."""
    out: dict[str, GridWorkload] = defaultdict(GridWorkload)
    for community, grids in grids_per_community.items():
        own = of_community(grids)
        for unit in ancestors(community):
            out[unit] = out[unit] + own
    return dict(out)
