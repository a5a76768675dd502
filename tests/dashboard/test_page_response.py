"""The command centre shows each unit's declared response level and the suggestion to
raise or lower it (Chromium via Playwright, against the real seeded system)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import System
from tests.dashboard.seed import STREET
from tests.dashboard.test_page import _cell, _login, browser, page, seeded
from zhibao_shared.tokens import Role

__all__ = ["browser", "page", "seeded"]  # the fixtures this module uses

pytestmark = pytest.mark.integration


def test_a_medium_risk_unit_without_a_level_is_flagged_for_raising(
    seeded: System, page: Page
) -> None:
    operator = seeded.token("640106", role=Role.OPERATE, name="金凤区值班")
    _login(page, operator)
    expect(_cell(page, STREET, "risk_level")).to_have_text("中风险")
    response = _cell(page, STREET, "response")
    expect(response.locator(".level-none")).to_have_text("未启动")
    expect(response.locator("[data-suggestion=raise]")).to_have_text("建议提级")
    expect(page.locator("[data-kpi=response] [data-suggestion=raise]")).to_be_visible()
    expect(page.locator("[data-kpi=pointsActive] .value")).to_have_text("0")
    expect(page.locator("[data-kpi=isolationsOverdue] .value")).to_have_text("0")
