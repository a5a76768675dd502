"""The command centre's load and update times, in headless Chromium driven by Playwright.

Shared by ``zhibao bench`` (:func:`phase_page`) and tests/dashboard/test_overview.py,
so the benchmark times exactly the page the test checks:

* ``page_load_ms``: from the navigation's start to the overview treemap drawn with
  every unit under the token's top unit (the page's own ``performance.now()``), with
  a fresh browser context (nothing cached), median over ``rounds`` loads;
* ``page_update_ms``: from a live rollup's arrival in the page to the overview
  redrawn with it (one request for the new overview, then ECharts' render), median
  over ``rounds`` events posted through intake, one at a time;
* ``page_update_e2e_ms``: the same redraw from the POST of the event (intake, the
  bus, the aggregator's rollup and the live stream included).

Playwright is a development dependency: without it, or without Debian's Chromium,
:func:`chromium_missing` says why and the phase is skipped.
"""

from __future__ import annotations

import importlib.util
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx

from zhibao_shared.events import CONTENT_TYPE_BATCH
from zhibao_shared.hierarchy import Level, Registry

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

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
TIMEOUT_MS = 60_000
VIEWPORT: ViewportSize = {"width": 1440, "height": 1000}
#: Every this many communities one has a confirmed case (medium risk), the rest are low.
CASE_EVERY = 37
#: The page refreshes its overview at most once a second (and queues one more refresh
#: behind a running one): rounds are spaced so that one never waits for the last.
ROUND_GAP_S = 3.0
DRAWN = "() => window.zhibaoTimings && window.zhibaoTimings.load_ms !== null"
#: The district's calendar: the page shows the figures of the local day there.
ZONE = ZoneInfo("Asia/Shanghai")


def chromium_missing() -> str | None:
    """Why the page cannot be measured on this machine, or None when it can."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (a development dependency: uv sync)"
    if shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, never a downloaded one."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def earlier_today(ago: timedelta, now: datetime | None = None) -> datetime:
    """``ago`` before ``now`` (default: the real now), but never before that local day's
    midnight (Asia/Shanghai, 16:00 UTC): data at this time counts in today's figures, the
    ones the page shows, even when posted minutes after local midnight."""
    now = now or datetime.now(UTC)
    midnight = now.astimezone(ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - ago, midnight.astimezone(UTC))


def _event(community: str, kind: str, data: dict[str, Any], when: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"page-{uuid.uuid4().hex}",
        "source": f"/{community}/page-timing",
        "type": f"zhibao.{kind}.v1",
        "subject": community,
        "time": when.isoformat(),
        "data": data,
    }


def screening(community: str, temperature: float, when: datetime) -> dict[str, Any]:
    """A gate screening (no person)."""
    return _event(community, "screening", {"temperature_c": temperature, "site": "gate"}, when)


def case_communities(registry: Registry) -> list[str]:
    """The communities that get a confirmed case (medium risk) in the whole-city data."""
    codes = [u.code for u in registry.at_level(Level.COMMUNITY)]
    return codes[::CASE_EVERY]


def whole_city_events(registry: Registry, now: datetime | None = None) -> list[dict[str, Any]]:
    """Data in every community: three screenings (a fever in every fifth community) and a
    confirmed case in every :data:`CASE_EVERY`-th, a minute or two ago (but today)."""
    now = now or earlier_today(timedelta(minutes=2))
    events = []
    for n, unit in enumerate(registry.at_level(Level.COMMUNITY)):
        for k in range(3):
            fever = k == 0 and n % 5 == 0
            events.append(screening(unit.code, 38.4 if fever else 36.5, now))
    for code in case_communities(registry):
        person = {"ref": f"page-case-{code}"}
        events.append(_event(code, "case", {"person": person, "classification": "confirmed"}, now))
    return events


def post(intake_url: str, token: str, events: list[dict[str, Any]], size: int = 200) -> None:
    """POST the events through intake in batches; each batch must be accepted."""
    headers = {"authorization": f"Bearer {token}", "content-type": CONTENT_TYPE_BATCH}
    with httpx.Client(timeout=60, headers=headers) as client:
        for start in range(0, len(events), size):
            answer = client.post(f"{intake_url}/v1/events", json=events[start : start + size])
            if answer.status_code != 202:
                raise RuntimeError(f"intake refused a batch: {answer.status_code} {answer.text}")


def open_page(browser: Browser, base_url: str, token: str) -> Page:
    """A fresh context (nothing cached) signed in through the link's fragment."""
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{base_url}/#token={token}")
    return page


def load_ms(page: Page) -> float:
    """Wait for the overview to be drawn; the page's time from navigation to then."""
    page.wait_for_function(DRAWN)
    return float(page.evaluate("window.zhibaoTimings.load_ms"))


def updates_seen(page: Page) -> int:
    """How many overview redraws after live rollups the page has recorded."""
    return int(page.evaluate("window.zhibaoTimings.updates.length"))


def next_update(page: Page, seen: int) -> dict[str, float]:
    """Wait for the first redraw after the ``seen`` ones; its timings."""
    page.wait_for_function(f"() => window.zhibaoTimings.updates.length > {seen}")
    found: dict[str, float] = page.evaluate(f"window.zhibaoTimings.updates[{seen}]")
    return found


def measure(
    browser: Browser,
    base_url: str,
    token: str,
    send_update: Callable[[int], None],
    rounds: int = 5,
) -> dict[str, Any]:
    """The page's load and update times (see the module docstring); ``send_update(i)``
    posts round ``i``'s event."""
    loads = []
    for _ in range(rounds):
        page = open_page(browser, base_url, token)
        loads.append(load_ms(page))
        page.context.close()
    page = open_page(browser, base_url, token)
    try:
        load_ms(page)
        page.wait_for_selector("#live.on")
        updates, e2e = [], []
        for i in range(rounds):
            time.sleep(ROUND_GAP_S)
            seen = updates_seen(page)
            posted = time.time() * 1000
            send_update(i)
            found = next_update(page, seen)
            updates.append(found["ms"])
            e2e.append(found["wall"] - posted)
        units = int(page.evaluate("window.zhibaoTimings.units"))
    finally:
        page.context.close()
    return {
        "page_load_ms": round(statistics.median(loads), 1),
        "page_update_ms": round(statistics.median(updates), 1),
        "page_update_e2e_ms": round(statistics.median(e2e), 1),
        "page_load_ms_all": [round(x, 1) for x in loads],
        "page_update_ms_all": [round(x, 1) for x in updates],
        "page_units": units,
    }
