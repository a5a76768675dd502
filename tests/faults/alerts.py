"""The alerts the alerts service raised and paged, compared with what the traffic implies.

What is expected, and how precisely:

* **immediate** alerts (a confirmed or asymptomatic case, an isolation breach)
  depend only on which events exist: exactly the simulator's expected set
  (rule, community and day), each alert raised exactly once (a case: one per
  person; a breach: one per community and day), whatever the order,
  duplication or redelivery of the events.
* **the outbreak**: its fever cluster (that building, that day) and an EARS
  fever alarm for the community that day must have been raised. The outbreak
  starts the day before the last, after days of data: EARS judges a unit only
  once it has a baseline of its own days.
* **time-based** alerts are evaluated against the wall clock while the backlog
  is still being applied, so during the run they come and go; what is exact is
  the end state: open ``missing_daily_report`` alerts are the communities whose
  report for the overdue day never came, open ``missed_isolation_check``
  alerts the communities with someone in isolation not checked for 24 h.
* **paging**: every alert raised was delivered to the on-call webhook at least
  once. Delivery is documented *at least once*: a notification is marked sent
  only after the receiver's 2xx, so a crash (or a receiver slower than the
  sender's timeout) between the receiver acting on it and that commit sends it
  again. Pages are therefore identified as the receiver sees them — the
  Alertmanager ``fingerprint`` (the alert's dedup key) and ``startsAt`` (when
  that alert fired) — and resends are counted and reported, not forbidden.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.faults.receiver import PageKey
from zhibao_client.simulator.truth import GroundTruth

STATES = ("firing", "acknowledged", "resolved", "silenced")
OPEN = ("firing", "acknowledged", "silenced")
REPORT_DUE = timedelta(hours=33)  # ZHIBAO_DAILY_REPORT_DEADLINE's default
CHECK_DUE = timedelta(hours=24)  # rules.yaml: missed_check_hours
#: Near the 24 h boundary the watchdog's last pass and this oracle may see different sides.
MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Alert:
    """An alert as the API lists it."""

    id: int
    dedup_key: str
    rule: str
    unit: str
    day: date
    state: str
    fired_at: str

    @property
    def condition(self) -> str:
        """``rule:unit:day``: an immediate alert's condition (a case alert's key also names
        the person, one alert each)."""
        return f"{self.rule}:{self.unit}:{self.day.isoformat()}"

    @property
    def page(self) -> PageKey:
        """How this alert's firing notification looks to the receiver."""
        fingerprint = hashlib.sha256(self.dedup_key.encode()).hexdigest()[:16]
        return (fingerprint, self.fired_at, "firing")


def fetch_alerts(alerts_url: str, token: str) -> list[Alert]:
    """Every alert the service holds, in every state."""
    answer = httpx.get(
        f"{alerts_url}/v1/alerts",
        params={"state": list(STATES), "limit": 500},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    answer.raise_for_status()
    rows: list[dict[str, Any]] = answer.json()["alerts"]
    assert len(rows) < 500, "more alerts than one page of the API: raise the limit"
    return [
        Alert(
            r["id"],
            r["dedup_key"],
            r["rule"],
            r["unit"],
            date.fromisoformat(r["day"]),
            r["state"],
            r["fired_at"],
        )
        for r in rows
    ]


def pending_notifications(alerts_url: str, token: str) -> int:
    """Notifications not delivered yet (pending) or given up on (failed)."""
    headers = {"authorization": f"Bearer {token}"}
    total = 0
    for status in ("pending", "failed"):
        answer = httpx.get(
            f"{alerts_url}/v1/notifications",
            params={"status": status},
            headers=headers,
            timeout=30,
        )
        answer.raise_for_status()
        total += len(answer.json()["notifications"])
    return total


def expected_immediate(truth: GroundTruth) -> set[str]:
    """Dedup keys of the immediate alerts the traffic must raise (rule:unit:day)."""
    return {
        f"{a.rule}:{a.unit}:{a.day.isoformat()}"
        for a in truth.expected_alerts
        if a.rule.startswith("immediate_")
    }


def outbreak_misses(truth: GroundTruth, raised: list[Alert]) -> list[str]:
    """The outbreak's expected cluster and EARS alarms that were not raised."""
    keys = {a.dedup_key for a in raised}
    missing = []
    for expected in truth.expected_alerts:
        day = expected.day.isoformat()
        if expected.rule == "fever_cluster":
            key = f"fever_cluster:{expected.unit}:{expected.reason}:{day}"
            if key not in keys:
                missing.append(key)
        elif expected.rule == "ears_fevers":
            found = [
                a
                for a in raised
                if a.rule.startswith("ears_")
                and a.rule.endswith("_fevers")
                and (a.unit, a.day) == (expected.unit, expected.day)
            ]
            if not found:
                missing.append(f"ears_*_fevers:{expected.unit}:{day}")
    return missing


def overdue_report_day(now: datetime, zone: ZoneInfo) -> date:
    """The latest day whose daily report is overdue at ``now`` (as the watchdog computes it)."""
    local = now.astimezone(zone)
    day = local.date() - timedelta(days=1)
    while datetime.combine(day, time(), zone) + REPORT_DUE > local:
        day -= timedelta(days=1)
    return day


def expected_missing_reports(truth: GroundTruth, day: date) -> set[str]:
    """Communities active in the run that never closed ``day``."""
    active = {community for community, _day in truth.days}
    return {c for c in active if not truth.at(c, day).reported}


def overdue_checks(events: list[dict[str, Any]], now: datetime) -> tuple[set[str], set[str]]:
    """Communities with someone in isolation unchecked for 24 h: (certainly, possibly).

    Per person, the latest start or check; an ``end`` closes the isolation.
    Persons within ``MARGIN`` of the boundary make their community only possible.
    """
    last: dict[str, tuple[datetime, str]] = {}
    ended: set[str] = set()
    for event in events:
        if event["type"] != "zhibao.isolation.v1":
            continue
        data, person = event["data"], str(event["data"]["person"])
        at = datetime.fromisoformat(event["time"])
        if data["action"] == "end":
            ended.add(person)
        elif data["action"] in ("start", "check") and (person not in last or at > last[person][0]):
            last[person] = (at, event["subject"])
    certain, possible = set(), set()
    for person, (at, community) in last.items():
        if person in ended:
            continue
        if at < now - CHECK_DUE - MARGIN:
            certain.add(community)
        elif at < now - CHECK_DUE + MARGIN:
            possible.add(community)
    return certain, possible | certain


def raised_more_than_once(raised: list[Alert], prefixes: tuple[str, ...]) -> dict[str, int]:
    """Dedup keys of the given rules that were raised as more than one alert."""
    counts = Counter(a.dedup_key for a in raised if a.rule.startswith(prefixes))
    return {key: n for key, n in counts.items() if n > 1}


def open_units(raised: list[Alert], rule: str) -> Counter[str]:
    """Units with an open alert of ``rule`` (how many open at once, per unit)."""
    return Counter(a.unit for a in raised if a.rule == rule and a.state in OPEN)


def unpaged(raised: list[Alert], delivered: Counter[PageKey]) -> list[Alert]:
    """Alerts whose firing notification the receiver never accepted."""
    return [a for a in raised if a.state != "silenced" and delivered[a.page] == 0]


def paged_twice(raised: list[Alert], delivered: Counter[PageKey]) -> int:
    """Alerts whose firing notification was accepted more than once (at-least-once resends)."""
    return sum(1 for a in raised if delivered[a.page] > 1)
