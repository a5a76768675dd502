"""The page's server side over real HTTP: live stream scoped to the token, alert proxy, assets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.dashboard.conftest import System
from tests.dashboard.seed import NEIGHBOUR_COMMUNITY, NEIGHBOUR_STREET, STREET, screening
from tests.support.sse import Events
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration


@contextmanager
def live(system: System, token: str, unit: str | None = None) -> Iterator[Events]:
    """An open ``/v1/live`` stream."""
    params = {"access_token": token, **({"unit": unit} if unit else {})}
    timeout = httpx.Timeout(10.0, read=10.0)
    with httpx.stream(
        "GET", f"{system.aggregator_url}/v1/live", params=params, timeout=timeout
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        yield Events(answer.iter_lines())


def test_the_live_stream_needs_a_token_covering_the_unit(system: System) -> None:
    url = f"{system.aggregator_url}/v1/live"
    street = system.token(STREET, role=Role.READ)
    reporter = system.token(STREET, role=Role.REPORT)
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, params={"access_token": "zb_nope"}).status_code == 401
    assert httpx.get(url, params={"access_token": reporter}).status_code == 403
    assert httpx.get(url, params={"access_token": street, "unit": "640106"}).status_code == 403


def test_a_street_sees_its_own_rollups_live_and_not_the_neighbours(system: System) -> None:
    reporter = system.token("640106", role=Role.REPORT)
    neighbour = system.token(NEIGHBOUR_STREET, role=Role.READ)
    mine = system.token(STREET, role=Role.READ)
    now = datetime.now(UTC) - timedelta(seconds=5)
    with live(system, neighbour) as theirs, live(system, mine, unit=STREET) as ours:
        ours.wait_live()
        theirs.wait_live()
        system.post([screening(f"{STREET}003", 38.1, now, "9")], reporter)
        street = ours.until("rollup", STREET)
        assert street["figures"]["fevers"] >= 1  # type: ignore[index]
        ours.until("rollup", f"{STREET}003")
        system.post([screening(NEIGHBOUR_COMMUNITY, 36.5, now, "1")], reporter)
        theirs.until("rollup", NEIGHBOUR_COMMUNITY)
        units = {str(data.get("unit", "")) for _, data in theirs.seen}
        assert not any(u.startswith(STREET) for u in units), units
        assert "640106" not in units, "a street's token never sees the district"


def test_the_page_and_its_assets_are_served_from_one_origin(system: System) -> None:
    page = httpx.get(f"{system.aggregator_url}/")
    assert page.status_code == 200
    assert "数据直报指挥中心" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text, "no CDN"
    echarts = httpx.get(f"{system.aggregator_url}/static/vendor/echarts/echarts.min.js")
    assert echarts.status_code == 200 and len(echarts.content) > 500_000
    licence = httpx.get(f"{system.aggregator_url}/static/vendor/echarts/LICENSE")
    assert "Apache License" in licence.text
    for path in ("/static/../router.py", "/static/%2e%2e/router.py", "/static/nothing.js"):
        assert httpx.get(f"{system.aggregator_url}{path}").status_code == 404, path
    paths = httpx.get(f"{system.aggregator_url}/openapi.json").json()["paths"]
    assert "/v1/live" not in paths and "/" not in paths


def test_who_am_i_and_the_alert_proxy_forward_the_callers_token(system: System) -> None:
    street = system.token(STREET, role=Role.OPERATE, name="street duty", person="刘洋 (街道值班员)")
    headers = {"authorization": f"Bearer {street}"}
    me = httpx.get(f"{system.aggregator_url}/v1/dashboard/me", headers=headers).json()
    assert me["role"] == "operate"
    assert [(u["code"], u["name"]) for u in me["units"]] == [(STREET, "黄河东路街道")]
    listed = httpx.get(
        f"{system.aggregator_url}/v1/alerts", params={"unit": STREET}, headers=headers
    )
    assert listed.status_code == 200
    assert all(a["unit"].startswith(STREET) for a in listed.json()["alerts"])
    assert httpx.get(f"{system.aggregator_url}/v1/alerts").status_code == 401
    outside = httpx.get(
        f"{system.aggregator_url}/v1/alerts", params={"unit": "640106"}, headers=headers
    )
    assert outside.status_code == 403
    missing = httpx.post(f"{system.aggregator_url}/v1/alerts/999999/ack", headers=headers)
    assert missing.status_code == 404
