"""What the worker page's browser tests run against: a nats-server, the response service
(uvicorn in a thread, serving the page) and an intake — the real one, or a recording
stand-in answering in intake's own answer format — sharing one data directory (tokens,
pseudonym key), as under ``zhibao up``. Also the headless Chromium at a phone's size."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.dashboard.conftest import ARTIFACTS, Served
from tests.support.browser import new_context
from tests.support.events import resident_id
from zhibao_cli.stack import wait_ready
from zhibao_intake.bootstrap import create_app as intake_app
from zhibao_intake.domain.outcome import (
    FieldError,
    ItemResult,
    RejectionCode,
    Status,
    SubmissionResult,
)
from zhibao_intake.settings import IntakeSettings
from zhibao_intake.submission import http_status
from zhibao_response.bootstrap import create_app as response_app
from zhibao_response.settings import ResponseSettings
from zhibao_shared.db import run_migrations
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.tokens import Role, TokenStore

T = TypeVar("T")
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
PHONE: ViewportSize = {"width": 360, "height": 740}
DISTRICT = "640106"
#: Each test works in a community of its own (the system is shared by a module's tests).
_communities = itertools.cycle([u.code for u in load_registry().communities_under(DISTRICT)])


def next_community() -> str:
    """A community of the sample registry that the tests before did not use."""
    return next(_communities)


@dataclass
class StandInIntake:
    """Records what reaches intake's ``POST /v1/events`` and answers in intake's format."""

    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    #: Field errors to refuse the next submissions with (one list per submission).
    refusals: list[list[FieldError]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        """The stand-in's ASGI app."""
        app = FastAPI()

        @app.post("/v1/events")
        async def events(request: Request) -> JSONResponse:
            event = json.loads(await request.body())
            with self.lock:
                self.received.append((dict(request.headers), event))
                errors = self.refusals.pop(0) if self.refusals else []
            item = ItemResult(
                index=0,
                id=event.get("id"),
                source=event.get("source"),
                status=Status.REJECTED if errors else Status.ACCEPTED,
                code=RejectionCode.INVALID if errors else None,
                errors=errors,
            )
            result = SubmissionResult.of([item])
            return JSONResponse(result.model_dump(mode="json"), status_code=http_status(result))

        @app.get("/readyz")
        async def ready() -> dict[str, str]:
            return {"status": "ok"}

        return app


@dataclass
class WorkerSystem:
    """The running services, the token store and helpers to issue and read tasks."""

    nats: NatsServer
    tokens: TokenStore
    response_url: str
    intake_url: str
    district_token: str
    served: list[Served] = field(default_factory=list)

    def token(self, scope: str, role: Role) -> str:
        """A new token's secret."""
        return self.tokens.create(scopes=[scope], role=role, name=f"{role} {scope}")[1]

    def issue(
        self, unit: str, *, due_in_h: float, kind: str = "verify_companion", **extra: Any
    ) -> str:
        """Issue one task (as the district) and answer its id."""
        task = {
            "unit": unit,
            "kind": kind,
            "due": (datetime.now(UTC) + timedelta(hours=due_in_h)).isoformat(),
            **extra,
        }
        answer = httpx.post(
            f"{self.response_url}/v1/tasks",
            json=[task],
            headers={"authorization": f"Bearer {self.district_token}"},
            timeout=20,
        )
        assert answer.status_code == 201, answer.text
        task_id: str = answer.json()["ids"][0]
        return task_id

    def task(self, task_id: str, token: str | None = None) -> dict[str, Any]:
        """One task as the district (or the given token) sees it."""
        answer = httpx.get(
            f"{self.response_url}/v1/tasks/{task_id}",
            headers={"authorization": f"Bearer {token or self.district_token}"},
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def contact(n: int) -> dict[str, Any]:
    """A person and contact details for task ``n``."""
    return {
        "person": {"id_number": resident_id(seq=n)},
        "contact": {"name": f"居民{n}", "phone": f"1391234{n:04d}", "address": f"枫林湾 {n}-1-101"},
        "note": f"核查行程 {n}",
    }


def off_the_loop(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own: Playwright's sync API keeps an event loop running
    in the test's thread, where ``asyncio.run`` is refused."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def start_system(root: Path, intake: FastAPI | None) -> WorkerSystem:
    """nats-server, the response service and intake (``intake``, or the real one)."""
    data = root / "data"
    nats = NatsServer(store_dir=root / "jetstream", log_file=root / "nats.log")
    nats.start()
    common: dict[str, Any] = {"nats_url": nats.url, "data_dir": data, "log_json": True}
    intake_port = free_port()
    intake_url = f"http://127.0.0.1:{intake_port}"
    response = ResponseSettings(
        response_port=free_port(), intake_url=intake_url, response_check_interval_s=0.2, **common
    )
    off_the_loop(lambda: asyncio.run(run_migrations(response.database_url(), "zhibao_response")))
    tokens = TokenStore.in_data_dir(data)
    system = WorkerSystem(
        nats,
        tokens,
        f"http://127.0.0.1:{response.response_port}",
        intake_url,
        tokens.create(scopes=[DISTRICT], role=Role.OPERATE, name="district")[1],
    )
    if intake is None:
        intake = intake_app(
            IntakeSettings(intake_port=intake_port, intake_bundle_events=1, **common)
        )
    system.served.append(Served.start(intake, intake_port))
    system.served.append(Served.start(response_app(response), response.response_port))
    for url in (system.intake_url, system.response_url):
        assert wait_ready(url, 60), f"{url} did not become ready"
    return system


def stop_system(system: WorkerSystem) -> None:
    """Stop what :func:`start_system` started, in reverse."""
    for served in reversed(system.served):
        served.stop()
    system.tokens.close()
    system.nats.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium (Debian's, never a downloaded one)."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A fresh tab at a phone's size on ``url``, and the console errors it collects."""
    context = new_context(
        browser,
        viewport=PHONE,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        has_touch=True,
        is_mobile=True,
    )
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(url)
    return tab, errors


def sign_in(page: Page, task_token: str, report_token: str) -> None:
    """Enter the community's two tokens."""
    page.get_by_label("任务令牌").fill(task_token)
    page.get_by_label("上报令牌").fill(report_token)
    page.get_by_role("button", name="进入").click()


def shot(page: Page, name: str) -> None:
    """A screenshot under artifacts/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
