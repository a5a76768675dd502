"""Alerts test fixtures: a migrated SQLite database, a controllable clock, events."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.clock import latest_local_midday
from zhibao_alerts.settings import AlertsSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.db import make_engine, run_migrations, sqlite_url
from zhibao_shared.events import PUBLISHED_EVENT, PublishedEvent, published_payload
from zhibao_shared.subjects import EVENTS_STREAM, event_subject

COMMUNITY = "640106001001"
_ids = itertools.count(1)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def to_local_midday(self) -> None:
        """Go back to the latest 12:00 in Asia/Shanghai, so that "today" minus a few hours
        is still the local day whatever the hour the test runs at."""
        self.now = latest_local_midday(self.now)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the alerts database at ``url`` (SQLite or PostgreSQL), migrated."""
    await run_migrations(url, "zhibao_alerts")
    engine = make_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated(sqlite_url(tmp_path, "alerts")) as engine:
        yield engine


def published(
    kind: str,
    data: dict[str, Any],
    *,
    community: str = COMMUNITY,
    when: datetime | None = None,
    event_id: str | None = None,
    level: str | None = None,
) -> PublishedEvent:
    """A published (bus) event (reported at ``level`` when given)."""
    at = when or datetime.now(UTC) - timedelta(minutes=5)
    return PUBLISHED_EVENT.validate_python(
        ({"reporterlevel": level} if level else {})
        | {
            "specversion": "1.0",
            "id": event_id or f"a-{next(_ids)}",
            "source": f"/{community}/test",
            "type": f"zhibao.{kind}.v1",
            "subject": community,
            "time": at.isoformat(),
            "data": data,
            "reporter": "tok",
            "receivedat": at.isoformat(),
        }
    )


def confirmed(pid: str = "a" * 32, **kw: Any) -> PublishedEvent:
    return published("case", {"person": {"pid": pid}, "classification": "confirmed"}, **kw)


def fever(building: str = "3", temperature: float = 38.2, **kw: Any) -> PublishedEvent:
    return published(
        "screening",
        {
            "temperature_c": temperature,
            "site": "household",
            "compound": "枫林湾",
            "building": building,
        },
        **kw,
    )


def correction(
    original: PublishedEvent,
    data: dict[str, Any] | None = None,
    *,
    reason: str = "reported in error",
    when: datetime | None = None,
    event_id: str | None = None,
    reporter: str = "grid-worker-token",
    kind: str | None = None,
    level: str | None = None,
) -> PublishedEvent:
    """A correction of ``original`` as intake publishes it: a retraction, or with ``data``
    a replacement of its data (as data of type ``kind``, when given: not the original's)."""
    at = when or datetime.now(UTC) - timedelta(minutes=1)
    body: dict[str, Any] = {
        "corrects": {"source": original.source, "id": original.id},
        "action": "retract" if data is None else "replace",
        "reason": reason,
    }
    if data is not None:
        body |= {"type": kind or original.type, "data": data}
    return PUBLISHED_EVENT.validate_python(
        ({"reporterlevel": level} if level else {})
        | {
            "specversion": "1.0",
            "id": event_id or f"c-{next(_ids)}",
            "source": f"/{original.subject}/corrections",
            "type": "zhibao.correction.v1",
            "subject": original.subject,
            "time": at.isoformat(),
            "data": body,
            "reporter": reporter,
            "receivedat": at.isoformat(),
        }
    )


async def publish_confirmed(url: str) -> None:
    """Publish a confirmed case of ``COMMUNITY`` on the events stream (declared if need be)."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(AlertsSettings()))
        await js.publish(
            event_subject(COMMUNITY, "case"), published_payload(confirmed()), stream=EVENTS_STREAM
        )
    finally:
        await client.close()
