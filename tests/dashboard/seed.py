"""Seeded history for the dashboard tests: a quiet baseline, then today's fever spike and a case."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.support.clock import earlier_today
from tests.support.events import resident_id

STREET = "640106001"  # 黄河东路街道
COMMUNITY_A = "640106001001"  # 丰登社区 (its first compound: 枫林湾)
COMMUNITY_B = "640106001002"  # 悦湖社区 (its first compound: 未来城)
NEIGHBOUR_STREET = "640106002"  # 北京中路街道
NEIGHBOUR_COMMUNITY = "640106002001"
#: A resident ID that is reported and must never be shown anywhere.
SECRET_ID = resident_id(seq=456)

_ids = itertools.count(1)


def _event(community: str, kind: str, data: dict[str, Any], when: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"dash-{next(_ids)}",
        "source": f"/{community}/dashboard-test",
        "type": f"zhibao.{kind}.v1",
        "subject": community,
        "time": when.isoformat(),
        "data": data,
    }


def screening(community: str, temperature: float, when: datetime, building: str) -> dict[str, Any]:
    """A gate screening (no person needed)."""
    data = {"temperature_c": temperature, "site": "gate", "building": building}
    return _event(community, "screening", data, when)


def history(now: datetime | None = None) -> list[dict[str, Any]]:
    """Ten quiet days (one fever a day in A) and today: 16 screenings in A of which 6
    fevers, 3 in B, 2 in the neighbouring street, a confirmed case in A (an alert), two
    people in isolation in A since three days, and B's zero report for today."""
    now = now or earlier_today(timedelta(minutes=2))  # today's, whatever the hour
    events = []
    for days_ago in range(10, 0, -1):
        day = now - timedelta(days=days_ago)
        events.append(screening(COMMUNITY_A, 37.8, day, f"b{days_ago}"))
        events.append(screening(COMMUNITY_A, 36.5, day, "1"))
    for _ in range(10):
        events.append(screening(COMMUNITY_A, 36.4, now, "1"))
    for n in range(6):  # different buildings: an aberration, not a building cluster
        events.append(screening(COMMUNITY_A, 38.0 + n / 10, now, f"{n + 10}"))
    for _ in range(3):
        events.append(screening(COMMUNITY_B, 36.6, now, "2"))
    for _ in range(2):
        events.append(screening(NEIGHBOUR_COMMUNITY, 36.7, now, "5"))
    started = now - timedelta(days=3)
    for ref in ("iso-1", "iso-2"):
        data = {"person": {"ref": ref}, "action": "start", "kind": "home"}
        events.append(_event(COMMUNITY_A, "isolation", data, started))
    case = {"person": {"id_number": SECRET_ID}, "classification": "confirmed"}
    events.append(_event(COMMUNITY_A, "case", case, now))
    local_day = now.astimezone(_china()).date().isoformat()
    events.append(_event(COMMUNITY_B, "daily_report", {"date": local_day, "zero": True}, now))
    return events


def _china() -> ZoneInfo:
    return ZoneInfo("Asia/Shanghai")
