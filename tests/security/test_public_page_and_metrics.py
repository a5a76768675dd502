"""The public bulletin page shows released figures safely; /metrics names no community.

A real aggregator with community-level public figures, some suppressed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.security.public_stack import ZONE, RunningAggregator, confirmed, running_aggregator
from zhibao_aggregator.public_page import COLUMNS, SUPPRESSED
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.natsserver import NatsServer, free_port

pytestmark = pytest.mark.integration

DISTRICT, STREET = "640106", "640106001"
A, B, C = "640106001001", "640106001002", "640106002001"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture
def seeded(nats_server: NatsServer, tmp_path: Path) -> Iterator[RunningAggregator]:
    """Three days ago: 2 cases in A (a small count), 7 in B, 6 in C; released by now."""
    day = datetime.now(UTC).astimezone(ZONE).date() - timedelta(days=3)  # released by now,
    # and a later day too (day D is released at D+1 10:00 local)
    with running_aggregator(
        nats_server, tmp_path, public_min_level="community", aggregator_metrics_port=free_port()
    ) as aggregator:
        aggregator.publish([*confirmed(A, day, 2), *confirmed(B, day, 7), *confirmed(C, day, 6)])
        aggregator.wait_applied(DISTRICT, day, 15)
        body = aggregator.public(STREET, date=str(day)).json()
        a = next(row for row in body["children"] if row["code"] == A)
        assert a["figures"]["new_confirmed"] == {"value": None, "suppressed": True}
        yield aggregator


def test_metrics_hold_no_per_community_case_series(seeded: RunningAggregator) -> None:
    """/metrics is on its own port, not the public one, and names no unit there either."""
    assert httpx.get(f"{seeded.url}/metrics").status_code == 404, "not on the public port"
    answer = httpx.get(f"http://127.0.0.1:{seeded.settings.aggregator_metrics_port}/metrics")
    assert answer.status_code == 200
    assert "zhibao_aggregator_events_applied_total" in answer.text, "the metrics were scraped"
    codes = {unit.code for unit in load_registry()}
    samples = [s for family in text_string_to_metric_families(answer.text) for s in family.samples]
    # names and label values, not sample values: a timestamp or a byte count may hold any
    # digits (one CI run's held 6401, 640104 and 640105); the province's two digits likewise
    named = {s.name for s in samples} | {v for s in samples for v in s.labels.values()}
    long_codes = [code for code in codes if len(code) > 2]
    leaked = [code for code in long_codes if any(code in text for text in named)]
    assert not leaked, "a unit code in /metrics"
    assert not codes & named, "a unit code as a label"
    labels = {name for s in samples for name in s.labels}
    assert not labels & {"unit", "community", "street", "district", "code", "subject"}, labels


def test_the_bulletin_page_needs_no_token_and_loads_nothing_else(
    seeded: RunningAggregator,
) -> None:
    answer = httpx.get(f"{seeded.url}/public/{STREET}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    page = answer.text
    for label in ("新增确诊", "现有确诊", "累计确诊", "连续无新增天数", "风险等级"):
        assert label in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    row_a = re.search(rf"/public/{A}'>[^<]*</a></td>(.*?)</tr>", page)
    assert row_a is not None
    # A's 2 cases are hidden wherever they are a count; the days without a new case may be
    # any number (2 on the day after the third day's release), so it is not checked here.
    cells_a = dict(
        zip(
            (key for key, _, _ in COLUMNS),
            re.findall("<td>(.*?)</td>", row_a.group(1)),
            strict=True,
        )
    )
    for figure in ("current_confirmed", "cumulative_confirmed"):
        assert cells_a[figure] == SUPPRESSED, (figure, cells_a)
    row_b = re.search(rf"/public/{B}'>[^<]*</a></td>(.*?)</tr>", page)
    assert row_b is not None and row_b.group(1).startswith("<td>0</td>")
    redirect = httpx.get(f"{seeded.url}/public", follow_redirects=True)
    assert redirect.status_code == 200 and "6401" in str(redirect.url)


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")
def test_the_bulletin_page_renders_in_chromium_without_policy_violations(
    seeded: RunningAggregator,
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{seeded.url}/public/{STREET}")
            assert "黄河东路街道 疫情通报" in page.locator("h1").inner_text()
            rows = page.locator("tbody tr")
            assert rows.count() > 2
            styled = page.eval_on_selector("table", "t => getComputedStyle(t).borderCollapse")
            assert styled == "collapse", "the hashed style applies"
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "public-bulletin.png"), full_page=True)
            assert not [m for m in console if "Content Security Policy" in m], console
        finally:
            browser.close()
