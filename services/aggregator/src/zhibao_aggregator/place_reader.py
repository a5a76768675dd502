"""Read side of registered places: a community's compounds, grids or buildings with
their figures for a day, and grid workers' workload per unit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from zhibao_aggregator.domain import place_figures as pf
from zhibao_aggregator.reader import RollupReader
from zhibao_aggregator.storage.place_counters import place_values
from zhibao_shared.places import Place, PlaceKind


class NotACommunity(ValueError):
    """Places are registered below communities only."""


def place_json(place: Place) -> dict[str, Any]:
    """A registered place as the API shows it (staff names only: the grid worker)."""
    return {
        "id": place.id,
        "kind": place.kind.value,
        "name": place.name,
        "households": place.households,
        "population": place.population,
        "compound": place.compound,
        "grid": place.grid,
        "worker": place.worker,
    }


@dataclass(frozen=True)
class PlaceReader:
    """Answers place queries from the per-place counters (see ``place_figures``)."""

    rollups: RollupReader

    def listed(self, community: str, kind: PlaceKind) -> list[Place]:
        """The community's registered places of ``kind``, in id order."""
        places = self.rollups.places
        if places is None:
            return []
        if kind is PlaceKind.COMPOUND:
            found = list(places.compounds(community))
        elif kind is PlaceKind.GRID:
            found = list(places.grids(community))
        else:
            found = [b for c in places.compounds(community) for b in places.buildings(c.id)]
        return sorted(found, key=lambda p: p.id)

    async def places(self, code: str, kind: PlaceKind, day: date) -> dict[str, Any]:
        """The community's places of ``kind`` with their figures on ``day``, its
        ``unregistered`` count that day and its grid workload."""
        unit = self.rollups.unit(code)
        if not self.rollups.registry.is_community(unit.code):
            raise NotACommunity(code)
        listed = self.listed(code, kind)
        async with self.rollups.engine.connect() as conn:
            values = await place_values(conn, [*(p.id for p in listed), code], day)
        own_flows = values[code][0]
        return {
            "unit": code,
            "date": day.isoformat(),
            "kind": kind.value,
            "unregistered": own_flows.get(pf.UNREGISTERED, 0),
            "grid_workload": self.rollups.grid_workload(code),
            "places": [{**place_json(p), "figures": pf.figures(*values[p.id])} for p in listed],
        }
