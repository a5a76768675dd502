"""The command-centre page's data-quality panel in Chromium: a street's communities ranked
by their scorecard's score, worst first, with the main figures (late and missing closes,
days since the last event, "never" for a community that never reported)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Dialog, expect, sync_playwright

from tests.dashboard.conftest import ARTIFACTS, System
from tests.dashboard.seed import COMMUNITY_A, COMMUNITY_B, STREET, _event, screening
from tests.support.browser import new_context
from tests.support.clock import earlier_today
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
COMMUNITIES_IN_STREET = 10

if shutil.which(CHROMIUM) is None:  # pragma: no cover - the suite installs it
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium (Debian's, never a downloaded one)."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _late_closes_and_a_screening(now: datetime) -> list[dict[str, object]]:
    """A closes days -3 and -2 now (both past their deadline) and screens someone today."""
    today = now.astimezone(ZoneInfo("Asia/Shanghai")).date()
    days = (str(today - timedelta(days=n)) for n in (3, 2))
    closes = [_event(COMMUNITY_A, "daily_report", {"date": d, "zero": False}, now) for d in days]
    return [*closes, screening(COMMUNITY_A, 36.5, now, "1")]


def test_the_quality_panel_ranks_a_streets_communities_worst_first(
    system: System, browser: Browser
) -> None:
    now = earlier_today(timedelta(minutes=1))  # "screens someone today"
    system.post(_late_closes_and_a_screening(now), system.token(STREET, role=Role.REPORT))
    token = system.token(STREET, role=Role.READ, name="quality panel test")
    context = new_context(browser, viewport={"width": 1440, "height": 1400}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{system.aggregator_url}/#token={token}")
        panel = page.locator("#quality-panel")
        expect(panel).to_be_visible()
        rows = panel.locator("tbody tr")
        expect(rows).to_have_count(COMMUNITIES_IN_STREET)
        best = rows.last
        expect(best).to_have_attribute("data-code", COMMUNITY_A)
        expect(best.locator("[data-figure=closes_late]")).to_have_text("2")
        expect(best.locator("[data-figure=days_since_last_event]")).to_have_text("0")
        silent = panel.locator(f"tr[data-code='{COMMUNITY_B}']")
        expect(silent.locator("[data-figure=days_since_last_event]")).to_have_text("从未上报")
        scores = [float(s) for s in panel.locator("[data-figure=score]").all_inner_texts()]
        assert scores == sorted(scores), "worst first"
        assert scores[0] == 0 and scores[-1] > 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        panel.screenshot(path=str(ARTIFACTS / "dashboard-quality.png"))

        page.locator("#lang").click()
        expect(silent.locator("[data-figure=days_since_last_event]")).to_have_text("never")
        assert errors == [], f"errors in the browser: {errors}"
    finally:
        context.close()


def test_a_link_does_not_silently_replace_the_token_signed_in(
    system: System, browser: Browser
) -> None:
    """A #token= link stored its token over the one already there without a word: a link
    from someone else signed the officer on duty in as that someone. The page now asks,
    and keeps the token signed in when the answer is no."""
    mine = system.token(STREET, role=Role.READ, name="officer on duty")
    theirs = system.token(COMMUNITY_A, role=Role.READ, name="someone else")
    context = new_context(browser, locale="zh-CN")
    page = context.new_page()
    asked: list[str] = []

    def refuse(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    try:
        page.goto(f"{system.aggregator_url}/#token={mine}")
        expect(page.locator("#quality-panel")).to_be_visible()
        page.once("dialog", refuse)
        page.goto(f"{system.aggregator_url}/?again#token={theirs}", wait_until="load")
        assert page.evaluate("localStorage.getItem('zhibao.token')") == mine
        assert asked and "令牌" in asked[0]
        page.once("dialog", lambda dialog: dialog.accept())
        page.goto(f"{system.aggregator_url}/?once-more#token={theirs}")
        page.wait_for_function(f"localStorage.getItem('zhibao.token') === {theirs!r}")
        asked.clear()
        page.on("dialog", refuse)
        page.goto(f"{system.aggregator_url}/?same#token={theirs}", wait_until="load")
        assert asked == [], "the same token again: no question"
        assert page.evaluate("localStorage.getItem('zhibao.token')") == theirs
    finally:
        context.close()
