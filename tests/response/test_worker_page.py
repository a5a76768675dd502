"""The community worker's page in a real browser (Debian's Chromium, Playwright) at a phone's
size, served by a real response service; intake is a recording stand-in that answers in
intake's own format, so these tests see exactly what the page sends to intake.

The same page against the real intake, with the task closing, is test_worker_page_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.response.worker_system import (
    DISTRICT,
    PHONE,
    StandInIntake,
    WorkerSystem,
    browser,
    contact,
    next_community,
    open_page,
    shot,
    sign_in,
    start_system,
    stop_system,
)
from zhibao_intake.domain.outcome import FieldError
from zhibao_shared.hierarchy import Level, load_registry
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration
__all__ = ["browser"]


@pytest.fixture(scope="module")
def stand_in() -> StandInIntake:
    """What reaches intake."""
    return StandInIntake()


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, stand_in: StandInIntake
) -> Iterator[WorkerSystem]:
    """The response service with the page, and the stand-in intake."""
    running = start_system(tmp_path_factory.mktemp("worker"), stand_in.app())
    try:
        yield running
    finally:
        stop_system(running)


@pytest.fixture
def community() -> str:
    """This test's own community."""
    return next_community()


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


def test_the_page_lists_the_community_s_open_tasks_only_soonest_first(
    system: WorkerSystem, page: Page, community: str
) -> None:
    later = system.issue(community, due_in_h=30, **contact(1))
    overdue = system.issue(community, due_in_h=-2, kind="disinfect", **contact(2))
    soon = system.issue(community, due_in_h=3, **contact(3))
    closed = system.issue(community, due_in_h=5, **contact(4))
    elsewhere = system.issue(next_community(), due_in_h=1, **contact(5))
    task_token = system.token(community, Role.OPERATE)
    answer = httpx.post(
        f"{system.response_url}/v1/tasks/{closed}/state",
        json={"state": "unreachable"},
        headers={"authorization": f"Bearer {task_token}"},
    )
    assert answer.status_code == 200, answer.text

    sign_in(page, task_token, system.token(community, Role.REPORT))
    cards = page.locator("#task-list > li")
    expect(cards).to_have_count(3)
    assert [c.get_attribute("data-task") for c in cards.all()] == [overdue, soon, later]
    expect(_card(page, elsewhere)).to_have_count(0)
    expect(_card(page, closed)).to_have_count(0)
    expect(page.locator("#summary")).to_have_text("待办任务 3 件，其中已超时 1 件。")
    # the overdue task stands out, in words as well as in colour
    expect(_card(page, overdue)).to_have_class("task overdue")
    expect(_card(page, overdue).locator(".overdue-badge")).to_be_visible()
    expect(_card(page, overdue).locator(".due")).to_contain_text("已超时")
    expect(_card(page, soon).locator(".overdue-badge")).to_be_hidden()
    expect(_card(page, overdue).locator(".kind")).to_have_text("消杀")
    # the contact details the API shows the community's own token
    details = _card(page, soon).locator(".details")
    expect(details).to_contain_text("居民3")
    expect(details).to_contain_text("枫林湾 3-1-101")
    expect(details).to_contain_text("核查行程 3")
    expect(details.get_by_role("link", name="13912340003")).to_have_attribute(
        "href", "tel:13912340003"
    )
    # the token stays in this tab's sessionStorage, never in the address
    assert task_token not in page.url
    stored = page.evaluate("sessionStorage.getItem('zhibao.worker.taskToken')")
    assert stored == task_token
    page.reload()
    expect(cards).to_have_count(3)
    # usable at 360 px: nothing wider than the screen, touch targets at least 44 px high
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for button in page.locator("button:visible").all():
        box = button.bounding_box()
        assert box is not None and box["height"] >= 44, button.text_content()
    shot(page, "worker-01-tasks")


def test_a_token_outside_a_community_or_wrong_is_told_so(system: WorkerSystem, page: Page) -> None:
    sign_in(page, "not-a-token", "not-a-token-either")
    expect(page.locator("#sign-in-error")).to_contain_text("任务令牌无效")
    expect(page.locator("#tasks-view")).to_be_hidden()
    sign_in(page, system.token("640106001", Role.OPERATE), system.token("640106001", Role.REPORT))
    expect(page.locator("#sign-in-error")).to_contain_text("不属于某一个社区")


def test_accepting_a_task_changes_its_state(
    system: WorkerSystem, page: Page, community: str
) -> None:
    task_id = system.issue(community, due_in_h=6, **contact(6))
    sign_in(page, system.token(community, Role.OPERATE), system.token(community, Role.REPORT))
    card = _card(page, task_id)
    expect(card.locator(".state")).to_have_text("状态：待接收")
    card.get_by_role("button", name="接收任务").click()
    expect(card.locator(".state")).to_have_text("状态：已接收")
    expect(card.get_by_role("button", name="接收任务")).to_be_hidden()
    assert system.task(task_id)["state"] == "accepted"
    # a read-only token may list but not accept
    task_id = system.issue(community, due_in_h=7)
    page.get_by_role("button", name="退出").click()
    sign_in(page, system.token(community, Role.READ), system.token(community, Role.REPORT))
    _card(page, task_id).get_by_role("button", name="接收任务").click()
    expect(_card(page, task_id).locator(".card-error")).to_contain_text("不能接收任务")
    assert system.task(task_id)["state"] == "issued"


def test_a_result_reaches_intake_as_a_task_result_event_with_the_report_token(
    system: WorkerSystem, stand_in: StandInIntake, page: Page, community: str
) -> None:
    task_id = system.issue(community, due_in_h=6, **contact(7))
    report_token = system.token(community, Role.REPORT)
    sign_in(page, system.token(community, Role.OPERATE), report_token)
    card = _card(page, task_id)
    card.get_by_role("button", name="填报结果").click()
    card.get_by_label("已完成").check()
    card.get_by_label("上门").check()
    card.get_by_label("居家隔离").check()
    card.get_by_label("已做核酸检测").check()
    until = date.today() + timedelta(days=14)
    card.get_by_label("隔离预计结束日期").fill(until.isoformat())
    card.get_by_label("备注").fill("本人在家，已告知居家隔离要求")
    before = len(stand_in.received)
    card.get_by_role("button", name="提交结果").click()
    expect(card.locator(".reported")).to_have_text("结果已上报，等待系统处理。")
    expect(card.get_by_role("button", name="填报结果")).to_be_hidden()
    assert len(stand_in.received) == before + 1
    headers, event = stand_in.received[-1]
    assert headers["authorization"] == f"Bearer {report_token}"
    assert headers["content-type"] == "application/cloudevents+json"
    assert event["type"] == "zhibao.task_result.v1"
    assert event["specversion"] == "1.0"
    assert event["subject"] == community
    assert event["id"].startswith("worker-") and len(event["id"]) == 39
    assert event["data"] == {
        "task": task_id,
        "outcome": "done",
        "method": "visit",
        "measures": ["home_isolation", "tested"],
        "until": until.isoformat(),
        "note": "本人在家，已告知居家隔离要求",
    }
    shot(page, "worker-02-reported")


def test_a_transfer_names_the_community_and_intake_s_refusals_are_shown_in_words(
    system: WorkerSystem, stand_in: StandInIntake, page: Page, community: str
) -> None:
    task_id = system.issue(community, due_in_h=6, **contact(8))
    sign_in(page, system.token(community, Role.OPERATE), system.token(community, Role.REPORT))
    card = _card(page, task_id)
    card.get_by_role("button", name="填报结果").click()
    card.get_by_role("button", name="提交结果").click()
    expect(card.locator(".result-error")).to_contain_text("请选择核查结果")
    card.get_by_label("不在本社区").check()
    card.get_by_label("电话").check()
    card.get_by_role("button", name="提交结果").click()
    expect(card.locator(".result-error")).to_contain_text("转往社区的12位代码")
    before = len(stand_in.received)
    card.get_by_label("转往社区").fill("640106002001")
    stand_in.refusals.append(
        [
            FieldError(field="data.transfer_to", message="not a community of the registry"),
            FieldError(field="data.task", message="the task is no longer open"),
        ]
    )
    card.get_by_role("button", name="提交结果").click()
    error = card.locator(".result-error")
    expect(error).to_contain_text("上报未被接受")
    expect(error).to_contain_text(
        "转往社区：转往社区的代码不在名册中，请核对。（not a community of the registry）"
    )
    expect(error).to_contain_text("任务：这项任务已经办结，不能再上报结果")
    first = stand_in.received[before][1]
    assert first["data"] == {
        "task": task_id,
        "outcome": "transferred",
        "method": "phone",
        "measures": [],
        "transfer_to": "640106002001",
    }
    shot(page, "worker-03-refused")
    stand_in.refusals.append([FieldError(field="data.outcome", message="something new")])
    card.get_by_role("button", name="提交结果").click()
    expect(error).to_contain_text("核查结果：something new")
    # corrected and sent again: the same event id, so a resend is never counted twice
    card.get_by_role("button", name="提交结果").click()
    expect(card.locator(".reported")).to_be_visible()
    assert stand_in.received[-1][1]["id"] == first["id"]


def test_the_forwarder_passes_task_results_only_and_needs_a_token(
    system: WorkerSystem, stand_in: StandInIntake
) -> None:
    url = f"{system.response_url}/worker/results"
    before = len(stand_in.received)
    screening = {"specversion": "1.0", "type": "zhibao.screening.v1", "data": {}}
    answer = httpx.post(url, json=screening, headers={"authorization": "Bearer x"})
    assert answer.status_code == 422 and "task_result" in answer.text
    answer = httpx.post(url, json={"type": "zhibao.task_result.v1"})
    assert answer.status_code == 401
    answer = httpx.post(url, content=b"{", headers={"authorization": "Bearer x"})
    assert answer.status_code == 400
    huge = b'{"type": "zhibao.task_result.v1", "x": ' + b"9" * 5000 + b"}"
    answer = httpx.post(url, content=huge, headers={"authorization": "Bearer x"})
    assert answer.status_code == 400 and "digits" in answer.text
    big = {"type": "zhibao.task_result.v1", "data": {"note": "x" * 20_000}}
    answer = httpx.post(url, json=big, headers={"authorization": "Bearer x"})
    assert answer.status_code == 413
    assert len(stand_in.received) == before
    assert "/worker" not in httpx.get(f"{system.response_url}/openapi.json").text


def test_the_page_offers_as_transfer_targets_only_communities_a_transfer_may_reach(
    system: WorkerSystem,
) -> None:
    registry = load_registry()
    community = next_community()
    token = system.token(community, Role.OPERATE)
    answer = httpx.get(
        f"{system.response_url}/worker/me", headers={"authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    offered = {unit["code"] for unit in answer.json()["transfer_to"]}
    # the district's communities, not the city's others (a transfer there is refused)
    assert offered == {u.code for u in registry.communities_under(DISTRICT)}
    assert len(registry.at_level(Level.COMMUNITY)) > len(offered)
