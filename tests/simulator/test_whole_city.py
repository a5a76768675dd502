"""The whole city simulated through the real system: every figure the simulator's truth
holds is what the rollups show at every level, every community's daily close is in the
completeness, and both outbreaks (Jinfeng's and, days later, Xingqing's) are visible.

nats-server, intake, the aggregator and the alerts service run as processes, as
``zhibao up`` runs them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from zhibao_cli.stack import Stack
from zhibao_client.client import ZhibaoClient
from zhibao_client.simulator import Simulation, SimulationConfig, run
from zhibao_client.simulator.truth import GroundTruth
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CITY, PROVINCE = "6401", "64"
DISTRICTS = ("640104", "640105", "640106", "640121", "640122", "640181")
# Eight whole past days: the first outbreak on day 1, the second on day 4.
CONFIG = SimulationConfig(
    seed=5,
    days=8,
    start=datetime.now().astimezone().date() - timedelta(days=12),
    scale=0.0003,
    outbreak=True,
    outbreak_day=1,
)
FIGURES = ("events", "screenings", "fevers")
#: A cluster's alert resolves itself once its window has passed (these days are history).
STATES = ["firing", "resolved"]


@dataclass
class Run:
    """The system after the simulation was sent, and what the simulator says it sent."""

    aggregator: str
    alerts: str
    token: str
    truth: GroundTruth
    simulation: Simulation

    def get(self, url: str, **params: Any) -> Any:
        answer = httpx.get(
            url, params=params, headers={"authorization": f"Bearer {self.token}"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def figures(self, unit: str, day: date) -> dict[str, Any]:
        found: dict[str, Any] = self.get(
            f"{self.aggregator}/v1/units/{unit}/rollup", date=day.isoformat()
        )["figures"]
        return found

    def expected(self, prefix: str, day: date, figure: str) -> int:
        return sum(
            int(getattr(totals, figure))
            for (community, on), totals in self.truth.days.items()
            if on == day and community.startswith(prefix)
        )


def days() -> list[date]:
    return [CONFIG.first_day + timedelta(days=n) for n in range(CONFIG.days)]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("whole-city")
    data = root / "data"
    env = {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(data),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_INTAKE_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_ALERTS_PORT": str(free_port()),
        "ZHIBAO_PSEUDONYM_KEY": secrets.token_urlsafe(48),
    }
    store = TokenStore.in_data_dir(data)
    _r, report = store.create(scopes=[CITY], role=Role.REPORT, name="city-reporter")
    _o, read = store.create(scopes=[PROVINCE], role=Role.OPERATE, name="province-centre")
    store.close()
    stack = Stack(
        env=env,
        data_dir=data,
        nats_url=env["ZHIBAO_NATS_URL"],
        names=("intake", "aggregator", "alerts"),
        log_dir=root / "logs",
    )
    with stack:
        simulation = Simulation(CONFIG)
        with ZhibaoClient(stack.url("intake"), report, Path(root / "city.spool")) as client:
            progress = run(simulation.timeline(), client)
        assert not progress.rejected, [r.describe() for r in progress.rejected[:5]]
        assert progress.spooled == 0 and progress.accepted == simulation.truth.events
        found = Run(
            stack.url("aggregator"), stack.url("alerts"), read, simulation.truth, simulation
        )
        _wait_visible(found)
        yield found


def _wait_visible(city: Run, timeout_s: float = 180) -> None:
    """Until the province's events of every day are what was sent."""
    deadline = time.monotonic() + timeout_s
    waiting = days()
    while waiting and time.monotonic() < deadline:
        waiting = [
            d
            for d in waiting
            if int(city.figures(PROVINCE, d)["events"] or 0) != city.expected("", d, "events")
        ]
        if waiting:
            time.sleep(0.5)
    assert not waiting, f"the rollups never showed every event of {waiting}"


def test_every_district_and_the_city_and_province_show_the_simulated_figures(city: Run) -> None:
    assert {c.code[:6] for c in city.simulation.communities} == set(DISTRICTS)
    for day in days():
        listed = city.get(f"{city.aggregator}/v1/units/{CITY}/children", date=day.isoformat())
        by_district = {row["code"]: row["figures"] for row in listed["children"]}
        assert set(by_district) == set(DISTRICTS)
        for district, figures in by_district.items():
            for figure in FIGURES:
                wanted = city.expected(district, day, figure)
                assert int(figures[figure] or 0) == wanted, (district, day, figure)
        for unit in (CITY, PROVINCE):
            figures = city.figures(unit, day)
            for figure in FIGURES:
                assert int(figures[figure] or 0) == city.expected("", day, figure), (unit, day)
    assert city.expected("", days()[0], "screenings") > 200, "every district screens daily"


def test_every_community_closes_every_day_and_the_silent_one_is_missing(city: Run) -> None:
    for day in days():
        answer = city.get(f"{city.aggregator}/v1/units/{CITY}/completeness", date=day.isoformat())
        assert answer["expected"] == 323
        not_reported = sorted(
            c.code for c in city.simulation.communities if not city.truth.at(c.code, day).reported
        )
        assert sorted(answer["missing"]) == not_reported, day
        assert answer["reported"] == 323 - len(not_reported)
    last = days()[-1]
    assert city.get(f"{city.aggregator}/v1/units/{CITY}/completeness", date=last.isoformat())[
        "missing"
    ] == [CONFIG.silent_community]


def test_both_outbreaks_are_visible_in_their_communities_and_raise_alerts(city: Run) -> None:
    (first, first_day), (second, second_day) = CONFIG.outbreak_sites
    assert first[:6] != second[:6], "in two districts"
    for site, start in ((first, first_day), (second, second_day)):
        confirmed = 0
        for day in days()[start:]:
            figures = city.figures(site, day)
            assert int(figures["fevers"] or 0) == city.expected(site, day, "fevers")
            confirmed += int(figures["new_confirmed"] or 0)
        assert confirmed >= 4, (site, confirmed)
    deadline = time.monotonic() + 60
    rules: dict[str, Counter[str]] = {}
    while time.monotonic() < deadline:
        rules = {
            site: Counter(
                a["rule"]
                for a in city.get(f"{city.alerts}/v1/alerts", unit=site, state=STATES)["alerts"]
            )
            for site in (first, second)
        }
        if all(rules[site]["fever_cluster"] and rules[site]["immediate_breach"] for site in rules):
            break
        time.sleep(0.5)
    for site in (first, second):
        assert rules[site]["fever_cluster"] >= 1, rules
        assert rules[site]["immediate_breach"] >= 1, rules
