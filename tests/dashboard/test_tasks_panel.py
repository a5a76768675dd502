"""The command-centre page's tasks panel in Chromium: the task figures, each street's
overdue tasks (ids, communities, kinds, due times; nothing personal), updated live."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.aggregator.tasks_support import PID, message, publish_tasks, task_id
from tests.dashboard.conftest import ARTIFACTS, System
from tests.dashboard.seed import COMMUNITY_A, COMMUNITY_B, NEIGHBOUR_COMMUNITY, STREET
from tests.support.browser import new_context
from tests.support.clock import earlier_today
from zhibao_shared.task_events import TaskEvent, TaskMessage, TaskState
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
DISTRICT = "640106"
NEIGHBOUR_STREET = NEIGHBOUR_COMMUNITY[:9]

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


def _tasks(now: datetime) -> list[TaskMessage]:
    """Task 1 overdue in A, task 2 open in B, task 3 done in B after two hours."""
    issued, past, later = now - timedelta(hours=2), now - timedelta(hours=1), now + timedelta(1)
    done = earlier_today(timedelta(seconds=5), now)  # done today, whatever the hour
    return [
        message(task_id(1), TaskEvent.ISSUED, TaskState.ISSUED, COMMUNITY_A, issued, past),
        message(task_id(2), TaskEvent.ISSUED, TaskState.ISSUED, COMMUNITY_B, issued, later),
        message(task_id(3), TaskEvent.ISSUED, TaskState.ISSUED, COMMUNITY_B, issued, later),
        message(task_id(3), TaskEvent.CHANGED, TaskState.DONE, COMMUNITY_B, done, later),
    ]


def _figure(metric: str) -> str:
    return f"#task-kpis [data-task-figure={metric}] .value"


def _publish(system: System, messages: list[TaskMessage]) -> None:
    """Publish from a thread of its own (Playwright's loop runs in this one)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, publish_tasks(system.nats.url, messages)).result(timeout=30)


def test_the_tasks_panel_lists_overdue_tasks_per_street_and_updates_live(
    system: System, browser: Browser
) -> None:
    now = datetime.now(UTC)
    _publish(system, _tasks(now))
    token = system.token(DISTRICT, role=Role.READ, name="task panel test")
    context = new_context(browser, viewport={"width": 1440, "height": 1200}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{system.aggregator_url}/#token={token}")
        expect(page.locator(_figure("tasks_open"))).to_have_text("2")
        expect(page.locator(_figure("tasks_overdue"))).to_have_text("1")
        expect(page.locator(_figure("tasks_done"))).to_have_text("1")
        expect(page.locator(_figure("tasks_unreachable"))).to_have_text("0")
        expect(page.locator(_figure("median_hours_to_done"))).to_have_text("2")
        street = page.locator(f"#overdue-streets [data-street='{STREET}']")
        row = street.locator(f"tr[data-task='{task_id(1)}']")
        expect(row.locator("[data-community]")).to_have_text("丰登社区")
        expect(row.locator("[data-kind]")).to_have_text("时空伴随者核查")
        expect(street.locator(".count")).to_have_text("1")
        expect(page.locator("#overdue-streets tr[data-task]")).to_have_count(1)

        # a new overdue task in the neighbouring street arrives while the page is open
        late = message(
            task_id(4),
            TaskEvent.ISSUED,
            TaskState.ISSUED,
            NEIGHBOUR_COMMUNITY,
            now - timedelta(hours=1),
            now - timedelta(minutes=30),
        )
        _publish(system, [late])
        expect(page.locator(_figure("tasks_overdue"))).to_have_text("2")
        neighbour = page.locator(f"#overdue-streets [data-street='{NEIGHBOUR_STREET}']")
        expect(neighbour.locator(f"tr[data-task='{task_id(4)}']")).to_have_count(1)
        text = page.locator("#tasks-panel").inner_text()
        assert PID not in text, "no pseudonym on the page"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator("#tasks-panel").screenshot(path=str(ARTIFACTS / "dashboard-tasks.png"))
        assert errors == [], f"errors in the browser: {errors}"
    finally:
        context.close()
