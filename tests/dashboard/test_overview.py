"""The overview (全域总览) of the whole city: one request, every unit, a treemap in Chromium.

Data in every one of Yinchuan's 323 communities, a confirmed case in some of them;
the page opened with a city token shows every district, colours each unit by its
risk, goes one level down per click and back up by the path. The load and update
times are measured with the benchmark's own code (zhibao_bench.page_timing) and
must be there; their size is the benchmark's business, not this test's.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import nats
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import System
from tests.dashboard.test_page import _shot, _wait_for
from tests.support.clock import earlier_today
from zhibao_bench.page_timing import (
    case_communities,
    chromium,
    chromium_missing,
    load_ms,
    measure,
    open_page,
    screening,
    whole_city_events,
)
from zhibao_shared.hierarchy import Level, Registry, load_registry
from zhibao_shared.subjects import rollup_subject
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration

if chromium_missing():  # pragma: no cover - the suite installs it
    pytest.skip(str(chromium_missing()), allow_module_level=True)

CITY = "6401"
DISTRICT = "640106"  # 金凤区
RISK_COLOURS = {"low": "#2e9d5b", "medium": "#e6a23c", "high": "#e0463a"}
NO_LEVEL = "#3d4c5e"

TREE = """() => {
  const chart = echarts.getInstanceByDom(document.getElementById('overview'));
  const walk = (n) => ({ code: n.code, name: n.name, colour: n.itemStyle.color,
    children: (n.children || []).map(walk) });
  return chart.getOption().series[0].data.map(walk);
}"""
RECT = """(code) => {
  const chart = echarts.getInstanceByDom(document.getElementById('overview'));
  const data = chart.getModel().getSeriesByIndex(0).getData();
  for (let i = 0; i < data.count(); i++) {
    const item = data.getRawDataItem(i);
    if (item && item.code === code) {
      const l = data.getItemLayout(i);
      return { x: l.x, y: l.y, width: l.width, height: l.height };
    }
  }
  return null;
}"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The shipped registry: the whole of Yinchuan."""
    return load_registry()


@pytest.fixture(scope="module")
def city(system: System, registry: Registry) -> System:
    """The system with three screenings in every community and some confirmed cases."""
    reporter = system.token(CITY, role=Role.REPORT, name="whole-city gate devices")
    events = whole_city_events(registry)
    for start in range(0, len(events), 200):
        system.post(events[start : start + 200], reporter)
    reader = system.token(CITY, role=Role.READ)
    expected = 3 * len(registry.at_level(Level.COMMUNITY))

    def counted() -> bool:
        answer = httpx.get(
            f"{system.aggregator_url}/v1/units/{CITY}/rollup",
            headers={"authorization": f"Bearer {reader}"},
        )
        figures = answer.json()["figures"]
        cases = len(case_communities(registry))
        return bool(figures["screenings"] == expected and figures["new_confirmed"] == cases)

    _wait_for(counted, timeout_s=90)
    return system


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (the benchmark's launcher)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, city: System) -> Iterator[Page]:
    """The page signed in with a city token (the page opens at the city)."""
    tab = open_page(browser, city.aggregator_url, city.token(CITY, role=Role.READ))
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
        assert errors == [], f"errors in the browser console: {errors}"
    finally:
        tab.context.close()


def _overview(system: System, code: str, token: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{system.aggregator_url}/v1/units/{code}/overview",
        params=params,
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


def _leaves(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in nodes:
        out.extend(_leaves(node["children"]) if node["children"] else [node])
    return out


def _click_unit(page: Page, code: str) -> None:
    rect = page.evaluate(RECT, code)
    assert rect is not None, f"{code} is not drawn"
    box = page.locator("#overview").bounding_box()
    assert box is not None
    x = box["x"] + rect["x"] + rect["width"] / 2
    y = box["y"] + rect["y"] + min(rect["height"] / 2, 40)
    page.mouse.click(x, y)


def test_one_request_lists_every_unit_under_the_city(city: System, registry: Registry) -> None:
    token = city.token(CITY, role=Role.READ)
    answer = _overview(city, CITY, token)
    assert answer.status_code == 200, answer.text
    units = {u["code"]: u for u in answer.json()["units"]}
    assert len(units) == len(registry) - 1  # everything but the province
    assert units[CITY]["population"] == sum(
        u.population or 0 for u in registry.at_level(Level.COMMUNITY)
    )
    cases = set(case_communities(registry))
    for unit in registry.communities_under(CITY):
        figures = units[unit.code]["figures"]
        assert figures["screenings"] == 3
        assert figures["risk_level"] == ("medium" if unit.code in cases else "low")
    assert units[CITY]["figures"]["needs_open"] == 0  # no need reported in the city

    shallow = _overview(city, CITY, token, depth=1).json()["units"]
    assert [u["code"] for u in shallow] == [CITY, *(c.code for c in registry.children(CITY))]
    street = city.token("640106001", role=Role.READ)
    assert _overview(city, CITY, street).status_code == 403
    assert _overview(city, "640199", token).status_code == 404
    assert _overview(city, CITY, token, depth=9).status_code == 422


def test_the_overview_shows_every_district_coloured_by_risk_and_drills_down(
    city: System, registry: Registry, page: Page
) -> None:
    load_ms(page)
    expect(page.locator("#crumbs strong")).to_have_text("银川市")
    tree = page.evaluate(TREE)
    districts = registry.children(CITY)
    assert [n["name"] for n in tree] == [d.name for d in districts]
    leaves = _leaves(tree)
    assert len(leaves) == len(registry.communities_under(CITY))
    cases = set(case_communities(registry))
    for leaf in leaves:
        risk = "medium" if leaf["code"] in cases else "low"
        assert leaf["colour"] == RISK_COLOURS[risk], leaf
    for node in tree:  # a district is medium when a community in it has a case
        risky = any(c.code in cases for c in registry.communities_under(node["code"]))
        assert node["colour"] == RISK_COLOURS["medium" if risky else "low"], node
    needs_open = page.locator("#needs-panel [data-need-figure=needs_open] .value")
    expect(needs_open).to_have_text("0")  # no need reported yet
    _shot(page, "09-overview-city")

    _click_unit(page, DISTRICT)
    expect(page.locator("#crumbs strong")).to_have_text("金凤区")
    expect(page.locator("#overview")).to_have_attribute("data-drawn", DISTRICT)
    streets = [n["code"] for n in page.evaluate(TREE)]
    assert streets == [s.code for s in registry.children(DISTRICT)]
    street = streets[0]
    _click_unit(page, street)
    expect(page.locator("#crumbs strong")).to_have_text(registry[street].name)
    expect(page.locator("#overview")).to_have_attribute("data-drawn", street)
    communities = [n["code"] for n in page.evaluate(TREE)]
    assert communities == [c.code for c in registry.children(street)]

    page.click(f"#crumbs a[data-code='{CITY}']")
    expect(page.locator("#overview")).to_have_attribute("data-drawn", CITY)
    page.select_option("#colour-by", "level")  # no declared levels: all alike
    page.wait_for_function(
        "(c) => echarts.getInstanceByDom(document.getElementById('overview'))"
        ".getOption().series[0].data.every((n) => n.itemStyle.color === c)",
        arg=NO_LEVEL,
    )


def test_load_and_update_times_are_measured_with_the_whole_city(
    city: System, registry: Registry, browser: Browser
) -> None:
    reporter = city.token(CITY, role=Role.REPORT, name="update device")
    community = registry.communities_under(DISTRICT)[0].code

    def send(_round: int) -> None:
        now = earlier_today(timedelta(seconds=5))  # counted in today's overview
        city.post([screening(community, 38.8, now)], reporter)

    timings = measure(browser, city.aggregator_url, city.token(CITY, role=Role.READ), send, 2)
    assert timings["page_units"] == len(registry) - 1
    assert timings["page_load_ms"] > 0
    assert timings["page_update_ms"] > 0
    assert timings["page_update_e2e_ms"] >= timings["page_update_ms"] - 1
    reader = city.token(CITY, role=Role.READ)
    units = {u["code"]: u for u in _overview(city, CITY, reader).json()["units"]}
    assert units[community]["figures"]["screenings"] == 3 + 2  # both updates counted


async def _send(url: str, subject: str, body: dict[str, Any]) -> None:
    client = await nats.connect(url)
    try:
        await client.publish(subject, json.dumps(body).encode())
        await client.flush()
    finally:
        await client.close()


def _publish(url: str, subject: str, body: dict[str, Any]) -> None:
    """Publish on NATS from a thread of its own (Playwright's loop runs in this one)."""
    thread = threading.Thread(target=lambda: asyncio.run(_send(url, subject, body)))
    thread.start()
    thread.join(timeout=30)


def test_needs_key_persons_and_grid_workload_show_once_the_rollup_has_them(
    city: System, page: Page
) -> None:
    """The rollup message of the contract (issue 17: needs_*, key_persons, grid_workload)
    arrives as the aggregator publishes rollups; the panel shows its figures."""
    load_ms(page)
    expect(page.locator("#live")).to_have_class("live on")
    expect(page.locator("#needs-panel [data-need-figure=needs_open] .value")).to_have_text("0")
    reader = city.token(CITY, role=Role.READ)
    rollup = httpx.get(
        f"{city.aggregator_url}/v1/units/{CITY}/rollup",
        headers={"authorization": f"Bearer {reader}"},
    ).json()
    workload = {
        "grids": 40,
        "workers": 38,
        "households": 22_000,
        "households_per_worker": 579,
        "grids_over_standard": 11,
        "standard": [300, 500],
        "workers_needed": [44, 74],
    }
    figures = {
        **rollup["figures"],
        "needs_open": 4,
        "needs_overdue": 1,
        "needs_median_hours": 3.5,
        "key_persons": {"elderly_alone": 12, "dialysis": 2},
        "grid_workload": workload,
    }
    message = {"unit": CITY, "level": "city", "date": rollup["date"], "figures": figures}
    _publish(city.nats.url, rollup_subject("city", CITY), message)

    panel = page.locator("#needs-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("[data-need-figure=needs_open] .value")).to_have_text("4")
    expect(panel.locator("[data-need-figure=needs_overdue]")).to_have_class("kpi warn")
    expect(panel.locator("[data-need-figure=needs_median_hours] .value")).to_have_text("3.5")
    expect(panel.locator("[data-need-figure=key_persons] .value")).to_have_text("14")
    expect(panel.locator("[data-key-person=elderly_alone]")).to_have_text("独居老人 12")
    expect(panel.locator("[data-need-figure=grid_workload] .value")).to_have_text("579")
    expect(panel.locator("[data-need-figure=grid_workload]")).to_have_class("kpi warn")
    _shot(page, "10-needs-panel")
