"""A real aggregator (uvicorn on a free port, in a thread) on a real nats-server, and events.

Events are published on the bus as intake publishes them (one message each,
with ``Nats-Msg-Id``); the aggregator consumes them as in production.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import uvicorn

from zhibao_aggregator.bootstrap import create_app
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_cli.stack import wait_ready
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.events import PUBLISHED_EVENT, PublishedEvent, published_payload
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.subjects import EVENTS_STREAM, event_subject
from zhibao_shared.tokens import Role, TokenStore

ZONE = ZoneInfo("Asia/Shanghai")
_ids = itertools.count(1)


def at_noon(day: date) -> datetime:
    """Local noon of ``day`` (an event time well inside the day)."""
    return datetime.combine(day, clock(12), tzinfo=ZONE)


def confirmed(community: str, day: date, how_many: int) -> list[PublishedEvent]:
    """``how_many`` new people confirmed in ``community`` on ``day``."""
    return [_event(community, day, "case", _person("confirmed")) for _ in range(how_many)]


def _person(classification: str) -> dict[str, Any]:
    return {"person": {"pid": f"{next(_ids):032x}"}, "classification": classification}


def _event(community: str, day: date, kind: str, data: dict[str, Any]) -> PublishedEvent:
    n = next(_ids)
    return PUBLISHED_EVENT.validate_python(
        {
            "specversion": "1.0",
            "id": f"sec-{n}",
            "source": f"/{community}/his",
            "subject": community,
            "type": f"zhibao.{kind}.v1",
            "time": at_noon(day),
            "reporter": "tok",
            "receivedat": datetime.now(ZONE),
            "data": data,
        }
    )


@dataclass
class RunningAggregator:
    """The aggregator under attack and what a test needs to feed and read it."""

    url: str
    settings: AggregatorSettings
    read_token: str

    def publish(self, events: list[PublishedEvent]) -> None:
        """Publish events on the bus as intake does."""
        asyncio.run(publish_events(self.settings, events))

    def wait_applied(self, code: str, day: date, new_confirmed: int) -> None:
        """Block until the (token-only) rollup of ``code`` on ``day`` counts that many."""

        def applied() -> bool:
            answer = httpx.get(
                f"{self.url}/v1/units/{code}/rollup",
                params={"date": str(day)},
                headers={"authorization": f"Bearer {self.read_token}"},
            )
            return bool(answer.json()["figures"]["new_confirmed"] == new_confirmed)

        wait_for(applied)

    def public(self, code: str, **params: str) -> httpx.Response:
        """The token-less public summary."""
        return httpx.get(f"{self.url}/v1/public/units/{code}/summary", params=params)


async def publish_events(settings: AggregatorSettings, events: list[PublishedEvent]) -> None:
    client = await nats.connect(settings.nats_url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        for event in events:
            subject = event_subject(event.subject, event.type.short)
            headers = {"Nats-Msg-Id": f"{event.source} {event.id}"}
            await js.publish(
                subject, published_payload(event), headers=headers, stream=EVENTS_STREAM
            )
    finally:
        await client.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    """Poll ``condition`` until true (fails the test after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@contextmanager
def running_aggregator(
    nats_server: NatsServer, root: Path, **overrides: Any
) -> Iterator[RunningAggregator]:
    """An aggregator process-alike: real uvicorn, real NATS, migrated SQLite."""
    settings = AggregatorSettings(
        nats_url=nats_server.url,
        data_dir=root / "data",
        aggregator_port=free_port(),
        log_json=True,
        _env_file=None,
        **overrides,
    )
    asyncio.run(migrate(settings.database_url()))
    tokens = TokenStore.in_data_dir(settings.data_dir)
    read_token = tokens.create(scopes=["6401"], role=Role.READ)[1]
    tokens.close()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.aggregator_port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.aggregator_port}"
    try:
        assert wait_ready(url, 60), "the aggregator did not become ready"
        yield RunningAggregator(url, settings, read_token)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def release_soon(now: datetime, today: date, seconds: float) -> timedelta:
    """A release delay that releases yesterday's figures ``seconds`` from ``now``."""
    yesterday = datetime.combine(today - timedelta(days=1), clock(0), tzinfo=ZONE)
    return now + timedelta(seconds=seconds) - yesterday
