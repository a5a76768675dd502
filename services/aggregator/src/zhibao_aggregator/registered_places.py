"""The grid workload the places registry gives per unit."""

from __future__ import annotations

from zhibao_aggregator.domain.workload import GridWorkload, by_unit
from zhibao_shared.hierarchy import Level, Registry
from zhibao_shared.places import Places


def grid_workload(places: Places, registry: Registry) -> dict[str, GridWorkload]:
    """Grid workload of every community of ``registry`` with grids, and of each unit above."""
    grids = {
        unit.code: list(places.grids(unit.code)) for unit in registry.at_level(Level.COMMUNITY)
    }
    return by_unit({code: found for code, found in grids.items() if found})
