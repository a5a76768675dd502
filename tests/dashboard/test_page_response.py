"""The command centre shows each unit's declared response level and the suggestion to
raise or lower it (Chromium via Playwright, against the real seeded system)."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import nats
import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import System
from tests.dashboard.seed import COMMUNITY_A, STREET
from tests.dashboard.test_page import _cell, _login, browser, page, seeded
from zhibao_shared.response_events import (
    LevelMessage,
    PointMessage,
    level_subject,
    point_subject,
)
from zhibao_shared.subjects import TASKS_STREAM
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


async def _announce(url: str, *messages: LevelMessage | PointMessage) -> None:
    """Put level and point messages on the tasks stream, as the response service does."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        for message in messages:
            subject = (
                level_subject(message.unit)
                if isinstance(message, LevelMessage)
                else point_subject(message.unit)
            )
            await js.publish(subject, message.model_dump_json().encode(), stream=TASKS_STREAM)
    finally:
        await client.close()


def test_declared_levels_and_points_overdue_for_lifting_show(seeded: System, page: Page) -> None:
    now = datetime.now(UTC)
    red = LevelMessage(
        declaration=uuid.uuid4().hex,
        unit=COMMUNITY_A,
        level="red",
        number=1,
        declared_at=now - timedelta(hours=1),
        declared_by="金凤区指挥部",
    )
    old_point = PointMessage(
        event="point_declared",
        point=uuid.uuid4().hex,
        unit=COMMUNITY_A,
        compound="枫林湾一期",
        building="3号楼",
        start=now - timedelta(days=20),
        declared_at=now - timedelta(days=20),
        declared_by="金凤区指挥部",
    )
    # Playwright's sync API runs an event loop in this thread: publish from another one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _announce(seeded.nats.url, red, old_point)).result()
    operator = seeded.token("640106", role=Role.OPERATE, name="金凤区值班")
    _login(page, operator)
    expect(page.locator("[data-kpi=pointsOverdue] .value")).to_have_text("1")
    expect(page.locator(f"#point-list li[data-point='{old_point.point}']")).to_contain_text(
        "枫林湾一期 3号楼"
    )
    expect(page.locator("#point-list li.overdue")).to_contain_text("逾期未解除")
    page.click(f"#row-{STREET}")
    response = _cell(page, COMMUNITY_A, "response")
    expect(response.locator(".level-red")).to_have_text("红色 (I级)")
    expect(response.locator("[data-suggestion=lower]")).to_have_text("建议降级")
