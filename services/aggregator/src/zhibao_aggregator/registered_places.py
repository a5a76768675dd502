"""Loading the places registry once per path, and the grid workload it gives per unit."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from zhibao_aggregator.domain.workload import GridWorkload, by_unit
from zhibao_shared.hierarchy import Level, Registry
from zhibao_shared.places import Places, load_places


@cache
def registered_places(path: Path | None) -> Places:
    """The places registry at ``path`` (None: the shipped sample), loaded once."""
    return load_places(path)


def grid_workload(places: Places, registry: Registry) -> dict[str, GridWorkload]:
    """Grid workload of every community of ``registry`` with grids, and of each unit above."""
    grids = {
        unit.code: list(places.grids(unit.code))
        for unit in registry.at_level(Level.COMMUNITY)
    }
    return by_unit({code: found for code, found in grids.items() if found})
