"""The worker page end to end: a real browser, the response service and the REAL intake on
one bus. A result the worker submits goes through intake onto the bus as
``zhibao.task_result.v1`` and closes the task in the response service; a result intake
refuses is shown to the worker in words and changes nothing.

These tests need intake's task-result contract and the response service's result
consumer (the `task-results` branch of issue #15): they fail until that work is merged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.response.worker_system import (
    WorkerSystem,
    browser,
    contact,
    next_community,
    off_the_loop,
    open_page,
    shot,
    sign_in,
    start_system,
    stop_system,
)
from tests.support.stream import stored_messages
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration
__all__ = ["browser"]
RESULT = "zhibao.task_result.v1"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerSystem]:
    """The response service with the page, and the real intake, on one nats-server."""
    running = start_system(tmp_path_factory.mktemp("worker-e2e"), None)
    try:
        yield running
    finally:
        stop_system(running)


@pytest.fixture
def page(browser: Browser, system: WorkerSystem) -> Iterator[Page]:
    """A phone-sized tab on the worker page; no uncaught script error may happen."""
    tab, errors = open_page(browser, f"{system.response_url}/worker")
    try:
        yield tab
        assert errors == [], f"script errors in the page: {errors}"
    finally:
        tab.context.close()


def _card(page: Page, task_id: str) -> Locator:
    return page.locator(f"#task-{task_id}")


def _eventually(what: str, condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def _results_on_the_bus(system: WorkerSystem) -> list[tuple[str, bytes, dict[str, Any]]]:
    found: list[tuple[str, bytes, dict[str, Any]]] = []
    for subject, payload, _headers in off_the_loop(lambda: stored_messages(system.nats.url)):
        document = json.loads(payload)
        for event in document if isinstance(document, list) else [document]:
            if event["type"] == RESULT:
                found.append((subject, payload, event))
    return found


def test_a_visit_result_reaches_the_bus_and_closes_the_task_a_phone_only_one_is_refused(
    system: WorkerSystem, page: Page
) -> None:
    community = next_community()
    task_id = system.issue(community, due_in_h=6, **contact(11))  # verify_companion
    task_token = system.token(community, Role.OPERATE)
    sign_in(page, task_token, system.token(community, Role.REPORT))
    card = _card(page, task_id)
    card.get_by_role("button", name="接收任务").click()
    expect(card.locator(".state")).to_have_text("状态：已接收")

    # seed 002's failure: a phone call may not close a task that needs a visit
    card.get_by_role("button", name="填报结果").click()
    card.get_by_label("已完成").check()
    card.get_by_label("电话").check()
    card.get_by_role("button", name="提交结果").click()
    refusal = card.locator(".result-error")
    expect(refusal).to_contain_text("上报未被接受")
    expect(refusal).to_contain_text("核查方式：这类任务必须上门核查")
    shot(page, "worker-e2e-01-phone-refused")
    assert system.task(task_id)["state"] == "accepted"

    card.get_by_label("上门").check()
    card.get_by_label("居家隔离").check()
    card.get_by_role("button", name="提交结果").click()
    expect(card.locator(".reported")).to_have_text("结果已上报，等待系统处理。")
    _eventually("the task to close", lambda: system.task(task_id)["state"] == "done")

    [(subject, payload, event)] = _results_on_the_bus(system)
    assert subject == f"zhibao.events.640106.{community}.task_result"
    assert event["data"]["task"] == task_id
    assert event["data"]["method"] == "visit"
    assert event["data"]["measures"] == ["home_isolation"]
    assert event["data"]["kind"] == "verify_companion"
    assert event["data"]["person"] == {"pid": system.task(task_id, task_token)["person_pid"]}
    personal = ("居民11", "13912340011", "枫林湾 11-1-101")
    assert not [value for value in personal if value.encode() in payload]

    page.get_by_role("button", name="刷新").click()
    expect(_card(page, task_id)).to_have_count(0)
    expect(page.locator("#summary")).to_have_text("目前没有待办任务。")


def test_a_transfer_moves_the_task_to_the_named_community(system: WorkerSystem, page: Page) -> None:
    community, other = next_community(), next_community()
    task_id = system.issue(community, due_in_h=6, kind="verify_contact", **contact(12))
    sign_in(page, system.token(community, Role.OPERATE), system.token(community, Role.REPORT))
    card = _card(page, task_id)
    card.get_by_role("button", name="填报结果").click()
    card.get_by_label("不在本社区").check()
    card.get_by_label("电话").check()
    card.get_by_label("转往社区").fill(other)
    card.get_by_role("button", name="提交结果").click()
    expect(card.locator(".reported")).to_be_visible()
    _eventually("the task to move", lambda: system.task(task_id)["unit"] == other)
    assert system.task(task_id)["state"] == "issued"
