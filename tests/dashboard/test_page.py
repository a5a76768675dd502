"""The command-centre page in a real browser (Debian's Chromium driven by Playwright)
against real processes: nats-server, intake, aggregator with the page, alerts.

Screenshots are saved under ``artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.dashboard.conftest import ARTIFACTS, System
from tests.dashboard.seed import (
    COMMUNITY_A,
    COMMUNITY_B,
    SECRET_ID,
    STREET,
    history,
    screening,
)
from tests.support.browser import new_context
from tests.support.clock import earlier_today
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if shutil.which(CHROMIUM) is None:  # pragma: no cover - the suite installs it
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.fixture(scope="module")
def seeded(system: System) -> System:
    """The system with the seeded history applied and the alerts raised."""
    reporter = system.token("640106", role=Role.REPORT, name="test gate devices")
    system.post(history(), reporter)
    reader = system.token("640106", role=Role.READ)

    def street_ready() -> bool:
        answer = httpx.get(
            f"{system.aggregator_url}/v1/units/{STREET}/rollup",
            headers={"authorization": f"Bearer {reader}"},
        )
        figures = answer.json()["figures"]
        return bool(figures["screenings"] == 19 and figures["new_confirmed"] == 1)

    def alerts_ready() -> bool:
        answer = httpx.get(
            f"{system.alerts_url}/v1/alerts",
            params={"unit": COMMUNITY_A},
            headers={"authorization": f"Bearer {reader}"},
        )
        rules = {a["rule"] for a in answer.json()["alerts"]}
        return "immediate_confirmed" in rules and any(r.startswith("ears_") for r in rules)

    _wait_for(street_ready)
    _wait_for(alerts_ready)
    return system


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium (Debian's, never a downloaded one)."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, seeded: System) -> Iterator[Page]:
    """A fresh page (own localStorage) at the dashboard's root."""
    context = new_context(browser, viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.goto(seeded.aggregator_url + "/")
    try:
        yield tab
        assert errors == [], f"errors in the browser console: {errors}"
    finally:
        context.close()


def _login(page: Page, token: str) -> None:
    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")


def _cell(page: Page, code: str, metric: str) -> Locator:
    return page.locator(f"#row-{code} td[data-metric={metric}]")


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_page_shows_the_seeded_numbers_and_drills_down(seeded: System, page: Page) -> None:
    operator = seeded.token("640106", role=Role.OPERATE, name="金凤区值班")
    expect(page.locator("h1")).to_have_text("数据直报指挥中心")
    _login(page, operator)

    expect(page.locator("#crumbs strong")).to_have_text("金凤区")
    expect(_cell(page, STREET, "screenings")).to_have_text("19")
    expect(_cell(page, STREET, "fevers")).to_have_text("6")
    expect(_cell(page, STREET, "new_confirmed")).to_have_text("1")
    expect(_cell(page, STREET, "in_isolation")).to_have_text("2")
    expect(_cell(page, STREET, "risk_level")).to_have_text("中风险")
    expect(_cell(page, "640106002", "screenings")).to_have_text("2")
    expect(page.locator("#last-update")).not_to_have_text("—")
    _shot(page, "01-district")

    page.click(f"#row-{STREET}")
    expect(page.locator("#crumbs")).to_contain_text("金凤区")
    expect(page.locator("#crumbs strong")).to_have_text("黄河东路街道")
    expect(_cell(page, COMMUNITY_A, "screenings")).to_have_text("16")
    expect(_cell(page, COMMUNITY_A, "fevers")).to_have_text("6")
    expect(_cell(page, COMMUNITY_A, "reporting")).to_have_text("待报")  # due tomorrow 09:00
    expect(_cell(page, COMMUNITY_B, "reporting")).to_have_text("已报")
    expect(page.locator(f"#row-{COMMUNITY_A} td.spark svg")).to_have_count(1)
    _shot(page, "02-street")

    page.click(f"#row-{COMMUNITY_A}")
    expect(page.locator("#crumbs strong")).to_have_text("丰登社区")
    expect(page.locator("[data-kpi=fevers] .value")).to_have_text("6")
    # The EARS upper bound is drawn on the fever chart where the alarm fired (today).
    page.wait_for_function(
        """() => {
          const c = echarts.getInstanceByDom(document.getElementById('chart-fevers'));
          const s = c && c.getOption().series.find((x) => x.type === 'scatter');
          return s && s.data.length > 0;
        }"""
    )
    _shot(page, "03-community")

    page.click("#crumbs a[data-code='640106']")
    expect(page.locator("#crumbs strong")).to_have_text("金凤区")
    page.click("#lang")
    expect(page.locator("h1")).to_have_text("Direct Reporting Command Centre")
    expect(_cell(page, STREET, "risk_level")).to_have_text("medium")
    _shot(page, "04-english")
    assert SECRET_ID not in page.content()


def test_a_new_event_updates_the_page_without_reloading(seeded: System, page: Page) -> None:
    _login(page, seeded.token(STREET, role=Role.READ, name="street reader"))
    expect(page.locator("#crumbs strong")).to_have_text("黄河东路街道")
    expect(_cell(page, COMMUNITY_B, "fevers")).to_have_text("0")
    expect(page.locator("#live")).to_have_class("live on")
    page.evaluate("window.__notReloaded = true")
    before = page.locator("#last-update").get_attribute("datetime")

    reporter = seeded.token(COMMUNITY_B, role=Role.REPORT)
    now = earlier_today(timedelta(seconds=5))  # counted in today's figures on the page
    seeded.post([screening(COMMUNITY_B, 38.6, now, "7")], reporter)

    expect(_cell(page, COMMUNITY_B, "fevers")).to_have_text("1")
    expect(_cell(page, COMMUNITY_B, "screenings")).to_have_text("4")
    expect(page.locator("[data-kpi=fevers] .value")).to_have_text("7")
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator("#last-update").get_attribute("datetime") != before
    # A street's reader sees no acknowledge buttons and not the neighbouring street.
    expect(page.locator("button[data-action=ack]")).to_have_count(0)
    expect(page.locator("#row-640106002")).to_have_count(0)
    _shot(page, "05-live-update")


def test_acknowledging_and_resolving_an_alert_changes_its_state(seeded: System, page: Page) -> None:
    duty = "刘洋 (街道值班员)"  # acknowledging takes a personal token
    operator = seeded.token(STREET, role=Role.OPERATE, name="街道值班员", person=duty)
    _login(page, operator)
    page.click(f"#row-{COMMUNITY_A}")
    expect(page.locator("#crumbs strong")).to_have_text("丰登社区")
    alert = page.locator("#alert-list > li", has_text="确诊病例")
    expect(alert).to_have_attribute("data-state", "firing")
    expect(alert.locator(".state")).to_have_text("告警中")
    _shot(page, "06-alert-firing")

    alert.locator("button[data-action=ack]").click()
    expect(alert).to_have_attribute("data-state", "acknowledged")
    expect(alert.locator(".state")).to_have_text("已确认")
    expect(alert.locator(".timeline")).to_contain_text("街道值班员")
    expect(alert.locator("button[data-action=ack]")).to_have_count(0)
    _shot(page, "07-alert-acknowledged")

    alert.locator("button[data-action=resolve]").click()
    expect(alert).to_have_count(0)  # resolved alerts leave the open list
    assert SECRET_ID not in page.content()


def test_a_province_token_opens_the_page_at_the_province(seeded: System, page: Page) -> None:
    reader = seeded.token("64", role=Role.READ, name="自治区指挥部")
    district = httpx.get(
        f"{seeded.aggregator_url}/v1/units/640106/rollup",
        headers={"authorization": f"Bearer {reader}"},
    ).json()["figures"]
    _login(page, reader)
    expect(page.locator("#crumbs strong")).to_have_text("宁夏回族自治区")
    expect(_cell(page, "6401", "screenings")).to_have_text(str(district["screenings"]))
    expect(page.locator("[data-kpi=fevers] .value")).to_have_text(str(district["fevers"]))
    _shot(page, "08-province")

    page.click("#row-6401")
    expect(page.locator("#crumbs strong")).to_have_text("银川市")
    expect(page.locator("#row-640104")).to_have_count(1)  # the city's six districts
    expect(page.locator("#row-640181")).to_have_count(1)
    page.click("#row-640106")
    expect(page.locator("#crumbs strong")).to_have_text("金凤区")
    expect(page.locator("#crumbs a[data-code='64']")).to_have_text("宁夏回族自治区")
    expect(page.locator("#crumbs a[data-code='6401']")).to_have_text("银川市")
