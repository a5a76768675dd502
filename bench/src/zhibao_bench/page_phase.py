"""(12) The command centre's page with the whole city: load and update times in Chromium.

Every service runs as ``zhibao up`` runs them, with the shipped whole-city registry
(Yinchuan: 382 units) and data in every community (:func:`whole_city_events`); the
page is opened with a city token, so its overview holds every unit of the city.
Measured with :mod:`zhibao_bench.page_timing`, the code tests/dashboard/test_overview.py
uses. Skipped, with the reason in ``page_skipped``, without Playwright or Chromium.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from zhibao_bench.harness import CITY, Running, running_stack
from zhibao_bench.page_timing import (
    chromium,
    chromium_missing,
    earlier_today,
    measure,
    post,
    screening,
    whole_city_events,
)
from zhibao_shared.hierarchy import Level, load_registry
from zhibao_shared.tokens import Role, TokenStore

SCREENINGS_PER_COMMUNITY = 3  # whole_city_events' screenings in every community


def _wait_counted(run: Running, screenings: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    url = f"{run.url('aggregator')}/v1/units/{CITY}/rollup"
    while time.monotonic() < deadline:
        if run.http.get(url).json()["figures"]["screenings"] >= screenings:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the city's rollup never showed {screenings} screenings")


def _city_reader(run: Running) -> str:
    tokens = TokenStore.in_data_dir(run.stack.data_dir)
    try:
        return tokens.create(scopes=[CITY], role=Role.READ, name="bench-page")[1]
    finally:
        tokens.close()


def phase_page(rounds: int) -> dict[str, Any]:
    """The page's load and update times (``page_load_ms``, ``page_update_ms``, ...)."""
    missing = chromium_missing()
    if missing:
        return {"page_skipped": f"page timing skipped: {missing}"}
    registry = load_registry()
    communities = registry.at_level(Level.COMMUNITY)
    with running_stack() as run:
        post(run.url("intake"), run.report_token, whole_city_events(registry))
        _wait_counted(run, SCREENINGS_PER_COMMUNITY * len(communities))
        target = communities[len(communities) // 2].code

        def send(_round: int) -> None:
            event = screening(target, 38.6, earlier_today(timedelta(seconds=5)))
            post(run.url("intake"), run.report_token, [event])

        with chromium() as browser:
            timings = measure(browser, run.url("aggregator"), _city_reader(run), send, rounds)
    return {**timings, "page_communities_with_data": len(communities)}
