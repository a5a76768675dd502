"""The overview of a unit: every unit under it, with its size and a few key figures.

The command-centre page draws it as a treemap (sized by population, coloured
by risk or declared response level) from one answer, so opening a city costs
one request however many communities it holds. Pure: the registry and the
figures are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zhibao_shared.hierarchy import Registry, Unit

#: Levels below the unit listed by default: a city down to its communities, a
#: province down to its streets (a province's communities are one click away).
DEFAULT_DEPTH = 3
MAX_DEPTH = 4

#: The figures each unit carries (those a rollup does not have yet are left out, so
#: figures other services add later appear without a change here).
KEY_FIGURES = (
    "risk_level",
    "declared_level",
    "level_suggestion",
    "screenings",
    "fevers",
    "new_confirmed",
    "current_confirmed",
    "in_isolation",
    "reports_expected",
    "reports_overdue",
    "tasks_open",
    "tasks_overdue",
    "needs_open",
    "needs_overdue",
    "needs_median_hours",
    "key_persons",
    "grid_workload",
)


def subtree(registry: Registry, code: str, depth: int) -> list[Unit]:
    """The unit and its descendants down to ``depth`` levels below it, parents first."""
    top = registry[code]
    found = [top]
    level = [top]
    for _ in range(depth):
        level = [child for unit in level for child in registry.children(unit.code)]
        if not level:
            break
        found.extend(level)
    return found


def _summed(registry: Registry, unit: Unit, field: str, memo: dict[str, int | None]) -> int | None:
    """The unit's own size if the registry gives one, else the sum of its children's."""
    if unit.code in memo:
        return memo[unit.code]
    own: int | None = getattr(unit, field)
    if own is None:
        parts = [_summed(registry, c, field, memo) for c in registry.children(unit.code)]
        known = [p for p in parts if p is not None]
        own = sum(known) if known else None
    memo[unit.code] = own
    return own


def sizes(registry: Registry, units: list[Unit], field: str) -> dict[str, int | None]:
    """Population (or households) of each unit, summed up from the communities where the
    registry lists it only there. Every unit below is visited once."""
    memo: dict[str, int | None] = {}
    return {unit.code: _summed(registry, unit, field, memo) for unit in units}


def key_figures(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The overview's figures of one unit (absent ones stay absent)."""
    return {key: figures[key] for key in KEY_FIGURES if key in figures}


def overview_json(
    registry: Registry,
    units: list[Unit],
    figures: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Every unit as the overview lists it: code, names, level, parent, sizes, figures."""
    population = sizes(registry, units, "population")
    households = sizes(registry, units, "households")
    return [
        {
            "code": unit.code,
            "name": unit.name,
            "name_en": unit.name_en,
            "level": unit.level.value,
            "parent": unit.parent,
            "population": population[unit.code],
            "households": households[unit.code],
            "figures": key_figures(figures.get(unit.code, {})),
        }
        for unit in units
    ]
