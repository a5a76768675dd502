"""Exactness: every figure the workload moves, at every level, as the read API shows it.

The expected counters are the workload's truth (per community) rolled up to
the street, district and city (codes nest by prefix); each unit's daily
series of each metric is read over the whole span of the events and compared
day by day. ``lost`` and ``double_counted`` are the events missing or counted
twice at the finest level (community and day); ``figures_wrong`` counts every
(unit, day, metric) that differs, at any level.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from zhibao_bench.workload import METRICS, STOCKS, Truth, communities
from zhibao_shared.hierarchy import lineage

#: The longest series the aggregator answers in one request.
SERIES_DAYS = 400
TOP = "64"  # the province (harness.PROVINCE): every unit lies below it


def rolled_up(truth: Truth) -> Counter[tuple[str, date, str]]:
    """The truth at every level: each community's counts added to its ancestors'."""
    out: Counter[tuple[str, date, str]] = Counter()
    for (community, day, metric), value in truth.items():
        for unit in lineage(community):
            out[(unit, day, metric)] += value
    return out


def by_unit_metric(truth: Truth) -> dict[tuple[str, str], dict[date, int]]:
    """Expected daily values per (unit, metric) (for stocks: the daily changes)."""
    flows: dict[tuple[str, str], dict[date, int]] = {}
    for (unit, day, metric), value in rolled_up(truth).items():
        flows.setdefault((unit, metric), {})[day] = value
    return flows


def spans(first: date, last: date) -> list[tuple[date, date]]:
    """``first``..``last`` cut into pieces the series API answers."""
    out = []
    while first <= last:
        end = min(last, first + timedelta(days=SERIES_DAYS - 1))
        out.append((first, end))
        first = end + timedelta(days=1)
    return out


def series(
    http: httpx.Client, url: str, unit: str, metric: str, first: date, last: date
) -> dict[date, int]:
    """A unit's daily values of a metric from the aggregator's read API (``http`` sends
    the token)."""
    out: dict[date, int] = {}
    for start, end in spans(first, last):
        response = http.get(
            f"{url}/v1/units/{unit}/series",
            params={"metric": metric, "from": str(start), "to": str(end)},
        )
        response.raise_for_status()
        out |= {date.fromisoformat(p["date"]): int(p["value"]) for p in response.json()["points"]}
    return out


def all_units() -> list[str]:
    """Every unit code: the communities and each of their ancestors."""
    return sorted({unit for c in communities() for unit in lineage(c)})


Shown = dict[tuple[str, str], dict[date, int]]


def check(url: str, token: str, truth: Truth, first: date, last: date) -> dict[str, int]:
    """Compare every unit's figures of every metric with the truth, day by day from
    ``first`` to ``last``, read with whichever of the API's routes takes fewer requests:
    one series per unit and metric, or each day's rollup tables (a unit's children)."""
    expected = by_unit_metric(truth)
    units = all_units()
    days = (last - first).days + 1
    by_series = len(units) * len(METRICS) * len(spans(first, last))
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {token}"}) as http:
        if by_series <= days * sum(1 for u in units if len(u) < 12):
            shown = _by_series(http, url, units, first, last)
        else:
            shown = _by_day(http, url, first, last)
    wrong = checked = lost = double = 0
    for unit in units:
        for metric in METRICS:
            got = shown.get((unit, metric), {})
            want = _expected_series(expected.get((unit, metric), {}), metric, first, last)
            for day, value in want.items():
                checked += 1
                value_shown = got.get(day, 0)
                wrong += value_shown != value
                if metric == "events" and len(unit) == 12:
                    lost += max(0, value - value_shown)
                    double += max(0, value_shown - value)
    return {
        "figures_checked": checked,
        "figures_wrong": wrong,
        "lost": lost,
        "double_counted": double,
    }


def _by_series(http: httpx.Client, url: str, units: list[str], first: date, last: date) -> Shown:
    return {
        (unit, metric): series(http, url, unit, metric, first, last)
        for unit in units
        for metric in METRICS
    }


def _by_day(http: httpx.Client, url: str, first: date, last: date) -> Shown:
    """Each day: the province's rollup, then the children of every unit above a community."""
    shown: Shown = {}
    day = first
    while day <= last:
        params = {"date": str(day)}
        response = http.get(f"{url}/v1/units/{TOP}/rollup", params=params)
        response.raise_for_status()
        found = {TOP: response.json()["figures"]}
        parents = [TOP]
        while parents:
            below = []
            for parent in parents:
                response = http.get(f"{url}/v1/units/{parent}/children", params=params)
                response.raise_for_status()
                for child in response.json()["children"]:
                    found[child["code"]] = child["figures"]
                    below += [child["code"]] if len(child["code"]) < 12 else []
            parents = below
        for unit, figures in found.items():
            for metric in METRICS:
                shown.setdefault((unit, metric), {})[day] = int(figures.get(metric) or 0)
        day += timedelta(days=1)
    return shown


def _expected_series(
    by_day: dict[date, int], metric: str, first: date, last: date
) -> dict[date, int]:
    out: dict[date, int] = {}
    level = sum(v for d, v in by_day.items() if d < first) if metric in STOCKS else 0
    day = first
    while day <= last:
        if metric in STOCKS:
            level += by_day.get(day, 0)
            out[day] = level
        else:
            out[day] = by_day.get(day, 0)
        day += timedelta(days=1)
    return out


def merged(truths: Iterable[Truth]) -> Truth:
    """The truth of several workloads sent to one system."""
    out: Truth = Counter()
    for truth in truths:
        out.update(truth)
    return out


def counters(database: Path) -> dict[tuple[Any, ...], int]:
    """Every counter (unit, metric, day) of an aggregator's SQLite database."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT unit, metric, day, value FROM counters WHERE value != 0")
        return {(unit, metric, day): int(value) for unit, metric, day, value in rows}


def compare_counters(live: Path, rebuilt: Path) -> dict[str, Any]:
    """Figure by figure: counters that differ between the live and the rebuilt database."""
    a, b = counters(live), counters(rebuilt)
    differ = sorted(key for key in a.keys() | b.keys() if a.get(key, 0) != b.get(key, 0))
    return {
        "rebuild_counters": len(b),
        "rebuild_counters_differing": len(differ),
        "rebuild_differences": [
            {"counter": list(key), "live": a.get(key, 0), "rebuilt": b.get(key, 0)}
            for key in differ[:5]
        ],
    }
