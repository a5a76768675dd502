"""Residents' ID numbers and names never leave intake, wherever one looks.

Communities report residents by ID number (also in lower case, with blanks,
next to a name field, mistyped, as a record id) and by name (as a local
reference, in extension attributes). A confirmed case raises an alert that
pages a webhook. Then every place the system keeps or shows data is scanned
for any of the numbers (also their first 17 digits) and names (also escaped
and percent-encoded): the JetStream streams (events, audit, dead letters:
payloads and headers) and their files on disk, every database, every log
line the processes wrote, every message on the bus, ``/metrics`` of every
service, the alerts API, the webhook's deliveries, the read API and the
command-centre page with its live stream.

Each scan first checks that it saw the data it should (the pseudonym, the
alert, the counts), so a scan of nothing cannot pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest

from tests.privacy.conftest import COMMUNITY, STREET, PrivacySystem, wait_until
from tests.privacy.residents import (
    AS_EVENT_ID,
    AS_SUBJECT,
    BY_NAME,
    CONFIRMED,
    EVERYONE,
    IN_EXTENSIONS,
    ISOLATED,
    LOWER_X,
    MISTYPED,
    WITH_NAME_FIELD,
    leaks,
    mistyped,
    unzipped,
)
from tests.support.clock import earlier_today
from tests.support.stream import stored_events
from zhibao_shared.events import parse_message
from zhibao_shared.subjects import AUDIT_STREAM, EVENTS_STREAM

pytestmark = pytest.mark.integration

DISTRICT = COMMUNITY[:6]
CITY = COMMUNITY[:4]
ACCEPTED = 7
_ids = itertools.count(1)


def _event(kind: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    when = earlier_today(timedelta(minutes=1))  # in today's rollup, whatever the hour
    return {
        "specversion": "1.0",
        "id": f"privacy-{kind}-{next(_ids)}",
        "source": f"/{COMMUNITY}/privacy-test",
        "type": f"zhibao.{kind}.v1",
        "subject": COMMUNITY,
        "time": when.isoformat(),
        "data": data,
        **extra,
    }


def accepted_events() -> list[dict[str, Any]]:
    """Valid reports naming residents every way the contract allows."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return [
        _event(
            "screening",
            {
                "temperature_c": 38.6,
                "site": "gate",
                "building": "3",
                "person": {"id_number": CONFIRMED.id_number},
            },
        ),
        _event(
            "screening",
            {
                "temperature_c": 36.5,
                "site": "door_to_door",
                "person": {"id_number": f"  {LOWER_X.id_number.lower()} "},
            },
        ),
        _event(
            "case",
            {"person": {"id_number": CONFIRMED.id_number}, "classification": "confirmed"},
        ),
        _event(
            "isolation",
            {"person": {"id_number": ISOLATED.id_number}, "action": "start", "kind": "home"},
        ),
        _event("case", {"person": {"ref": BY_NAME.name}, "classification": "suspected"}),
        _event(
            "screening",
            {
                "temperature_c": 36.7,
                "site": "household",
                "person": {"id_number": IN_EXTENSIONS.id_number},
            },
            residentname=IN_EXTENSIONS.name,
            residentid=IN_EXTENSIONS.id_number,
        ),
        _event(
            "daily_report",
            {
                "date": today.isoformat(),
                "zero": False,
                "counts": {"screenings": 3, "new_confirmed": 1},
            },
        ),
    ]


def refused_events() -> list[dict[str, Any]]:
    """Reports the contract refuses: a name next to the number, a mistyped number, the
    person's number as the CloudEvents ``subject`` (which should be the community)."""
    as_subject = _event("case", {"person": {"ref": "local-9"}, "classification": "suspected"})
    as_subject["subject"] = AS_SUBJECT.id_number
    return [
        as_subject,
        _event(
            "case",
            {
                "person": {"id_number": WITH_NAME_FIELD.id_number, "name": WITH_NAME_FIELD.name},
                "classification": "suspected",
            },
        ),
        _event(
            "screening",
            {
                "temperature_c": 36.6,
                "site": "gate",
                "person": {"id_number": mistyped(MISTYPED.id_number)},
            },
        ),
    ]


def id_number_as_event_id() -> dict[str, Any]:
    """A community system that keys its records by ID number."""
    event = _event(
        "case",
        {"person": {"id_number": AS_EVENT_ID.id_number}, "classification": "close_contact"},
    )
    event["id"] = f"case-{AS_EVENT_ID.id_number}"
    return event


def pid(key: bytes, id_number: str) -> str:
    """The pseudonym intake derives (as ``zhibao_intake.domain.pseudonym`` does)."""
    material = f"cn-resident-id:{id_number}".encode()
    return hmac.new(key, material, hashlib.sha256).hexdigest()[:32]


@dataclass
class Observed:
    """Everything scanned, by where it came from, and the answers intake gave."""

    surfaces: dict[str, bytes] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    def under(self, prefix: str) -> dict[str, bytes]:
        """The surfaces whose name starts with ``prefix``."""
        return {k: v for k, v in self.surfaces.items() if k.startswith(prefix)}


def _post(system: PrivacySystem, events: list[dict[str, Any]]) -> int:
    answer = httpx.post(
        f"{system.url('intake')}/v1/events",
        json=events,
        headers={
            "authorization": f"Bearer {system.reporter}",
            "content-type": "application/cloudevents-batch+json",
        },
        timeout=20,
    )
    return answer.status_code


async def _streams(url: str) -> dict[str, bytes]:
    """Every message of every stream, as ``subject + headers + payload`` per message."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        found: dict[str, bytes] = {}
        for info in await js.streams_info():
            name, state = str(info.config.name), info.state
            if state.messages == 0:
                continue
            for seq in range(state.first_seq, state.last_seq + 1):
                msg = await js.get_msg(name, seq)
                headers = "".join(f"{k}: {v}\n" for k, v in (msg.headers or {}).items())
                found[f"stream {name} #{seq}"] = f"{msg.subject}\n{headers}\n".encode() + (
                    msg.data or b""
                )
        return found
    finally:
        await client.close()


def _audited(url: str) -> int:
    """Submissions recorded in the audit stream (records are JSON lines, batched)."""
    streams = asyncio.run(_streams(url))
    audit = [blob for name, blob in streams.items() if name.startswith(f"stream {AUDIT_STREAM} ")]
    return sum(blob.count(b'"channel"') for blob in audit)


def _files(root: Path) -> dict[str, bytes]:
    return {f"file {p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _databases(root: Path) -> dict[str, bytes]:
    dumps = {}
    for path in root.glob("*.db"):
        with sqlite3.connect(path) as conn:
            dumps[f"database {path.name}"] = "\n".join(conn.iterdump()).encode()
    return dumps


def _get(system: PrivacySystem, service: str, path: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{system.url(service)}{path}", headers=headers, timeout=20)
    assert answer.status_code == 200, f"GET {service}{path}: {answer.status_code} {answer.text}"
    return answer


def _alert_answers(system: PrivacySystem) -> dict[str, bytes]:
    token = system.operator
    listed = _get(system, "alerts", "/v1/alerts?state=firing&state=acknowledged", token)
    found = {"alerts GET /v1/alerts": listed.content}
    for alert in listed.json()["alerts"]:
        path = f"/v1/alerts/{alert['id']}"
        found[f"alerts GET {path}"] = _get(system, "alerts", path, token).content
        found[f"dashboard GET {path}"] = _get(system, "aggregator", path, token).content
    for status in ("sent", "pending", "failed"):
        path = f"/v1/notifications?status={status}"
        found[f"alerts GET {path}"] = _get(system, "alerts", path, token).content
    found["dashboard GET /v1/alerts"] = _get(system, "aggregator", "/v1/alerts", token).content
    return found


def _read_api(system: PrivacySystem) -> dict[str, bytes]:
    token = system.operator
    today = datetime.now(UTC).date()
    week_ago = today - timedelta(days=7)
    found: dict[str, bytes] = {}
    for code in (COMMUNITY, STREET, DISTRICT, CITY):
        paths = [
            f"/v1/units/{code}",
            f"/v1/units/{code}/rollup",
            f"/v1/units/{code}/completeness",
            f"/v1/units/{code}/report.csv",
            f"/v1/units/{code}/series?metric=new_confirmed&from={week_ago}&to={today}",
        ]
        if code != COMMUNITY:
            paths.append(f"/v1/units/{code}/children")
        for path in paths:
            found[f"aggregator GET {path}"] = _get(system, "aggregator", path, token).content
        xlsx = _get(system, "aggregator", f"/v1/units/{code}/report.xlsx", token).content
        found[f"aggregator GET /v1/units/{code}/report.xlsx"] = unzipped(xlsx)
    for code in (CITY, DISTRICT, STREET):
        path = f"/v1/public/units/{code}/summary"
        found[f"public GET {path}"] = _get(system, "aggregator", path, None).content
    for path in ("/", "/v1/dashboard/me", "/static/app.js"):
        found[f"dashboard GET {path}"] = _get(system, "aggregator", path, token).content
    found["dashboard /v1/live stream"] = system.live.text().encode()
    return found


def _pages(system: PrivacySystem) -> list[dict[str, Any]]:
    return [
        body
        for body in system.webhook.bodies("/page")
        if body.get("groupLabels", {}).get("alertname") == "immediate_confirmed"
    ]


def _rollup_counts(system: PrivacySystem) -> tuple[Any, Any]:
    figures = _get(system, "aggregator", f"/v1/units/{COMMUNITY}/rollup", system.operator)
    data = figures.json()["figures"]
    return data["screenings"], data["new_confirmed"]


def _wait_for_everything(system: PrivacySystem, accepted: int) -> None:
    url = system.stack.bus_url
    wait_until("the accepted events in the stream", lambda: len(stored_events(url)) == accepted)
    wait_until("the three submissions in the audit trail", lambda: _audited(url) == 3)
    wait_until("the community's rollup", lambda: _rollup_counts(system) == (3, 1))
    wait_until("the confirmed case's page at the webhook", lambda: bool(_pages(system)))
    wait_until(
        "a rollup and an alert on the bus",
        lambda: (
            any(s.startswith("zhibao.rollups.") for s in system.bus.subjects())
            and any(s.startswith("zhibao.alerts.") for s in system.bus.subjects())
        ),
    )
    wait_until(
        "a rollup and an alert on the live stream",
        lambda: all(f"event: {kind}" in system.live.text() for kind in ("rollup", "alert")),
    )


@pytest.fixture(scope="module")
def observed(privacy_system: PrivacySystem) -> Observed:
    """Report the residents, wait until every part of the system has acted, record it all."""
    system = privacy_system
    seen = Observed()
    seen.statuses["accepted"] = _post(system, accepted_events())
    seen.statuses["refused"] = _post(system, refused_events())
    seen.statuses["id as event id"] = _post(system, [id_number_as_event_id()])
    accepted = ACCEPTED + (seen.statuses["id as event id"] == 202)
    _wait_for_everything(system, accepted)
    for name in ("intake", "aggregator", "alerts"):
        seen.surfaces[f"{name} GET /metrics"] = _get(system, name, "/metrics", None).content
    seen.surfaces.update(_alert_answers(system))
    seen.surfaces.update(_read_api(system))
    for n, body in enumerate(system.webhook.received):
        seen.surfaces[f"webhook delivery {n} to {body[0]}"] = repr(body[1]).encode()
        seen.surfaces[f"webhook delivery {n} (JSON)"] = httpx.Response(200, json=body[1]).content
    for n, (subject, data, headers) in enumerate(list(system.bus.messages)):
        seen.surfaces[f"bus {subject} #{n}"] = f"{subject}\n{headers}\n".encode() + data
    seen.surfaces.update(asyncio.run(_streams(system.stack.bus_url)))
    seen.surfaces.update(_databases(system.data_dir))
    seen.surfaces.update(_files(system.data_dir))
    return seen


def _assert_clean(surfaces: dict[str, bytes]) -> None:
    found = {name: leaks(blob) for name, blob in surfaces.items()}
    found = {name: what for name, what in found.items() if what}
    assert not found, "personal data found:\n" + "\n".join(
        f"- {name}: {what}" for name, what in found.items()
    )


def test_intake_answered_as_the_contract_says(observed: Observed) -> None:
    assert observed.statuses["accepted"] == 202
    assert observed.statuses["refused"] == 422
    assert observed.statuses["id as event id"] == 422, "an ID number as record id is refused"


def test_streams_hold_pseudonyms_and_no_person(
    observed: Observed, privacy_system: PrivacySystem
) -> None:
    events = observed.under(f"stream {EVENTS_STREAM} ")
    audit = observed.under(f"stream {AUDIT_STREAM} ")
    # A message holds one event or a bundle of several.
    assert sum(blob.count(b'"specversion"') for blob in events.values()) >= ACCEPTED
    assert audit, "the audit stream was read"
    confirmed = pid(privacy_system.pseudonym_key, CONFIRMED.id_number).encode()
    assert sum(blob.count(confirmed) for blob in events.values()) == 2, "screening and case"
    assert any(b"Nats-Msg-Id" in blob for blob in events.values()), "headers were read"
    _assert_clean(observed.under("stream "))


def test_no_file_in_the_data_directory_names_anyone(
    observed: Observed, privacy_system: PrivacySystem
) -> None:
    files = observed.under("file ")
    store = {k: v for k, v in files.items() if k.startswith("file jetstream/")}
    confirmed = pid(privacy_system.pseudonym_key, CONFIRMED.id_number).encode()
    assert any(confirmed in blob for blob in store.values()), "JetStream's files are plain"
    names = {Path(k.removeprefix("file ")).name for k in files}
    assert {"tokens.db", "aggregator.db", "alerts.db"} <= names
    _assert_clean(files)


def test_no_database_row_names_anyone(observed: Observed) -> None:
    dumps = observed.under("database ")
    assert b"immediate_confirmed" in dumps["database alerts.db"]
    assert COMMUNITY.encode() in dumps["database aggregator.db"]
    assert b"gate-3" in dumps["database tokens.db"]
    _assert_clean(dumps)


def test_no_log_line_names_anyone(observed: Observed) -> None:
    logs = observed.under("file logs/")
    for service in ("intake", "aggregator", "alerts"):
        lines = logs[f"file logs/{service}.log"].decode().splitlines()
        assert any(f'"service": "{service}"' in line for line in lines), f"{service} logged"
    assert b'"level": "debug"' in b"".join(logs.values()), "logging at DEBUG"
    _assert_clean(logs)


def test_no_message_on_the_bus_names_anyone(observed: Observed) -> None:
    bus = observed.under("bus ")
    assert any(k.startswith(f"bus zhibao.rollups.community.{COMMUNITY}") for k in bus)
    assert any(k.startswith("bus zhibao.alerts.") for k in bus)
    assert any(k.startswith("bus zhibao.audit.") for k in bus)
    events = [v.split(b"\n", 2)[2] for k, v in bus.items() if k.startswith("bus zhibao.events.")]
    assert sum(len(parse_message(payload)) for payload in events) >= ACCEPTED
    _assert_clean(bus)


def test_metrics_name_nobody(observed: Observed) -> None:
    metrics = observed.under("intake GET /metrics")
    assert b"zhibao_intake_events_accepted_total" in metrics["intake GET /metrics"]
    _assert_clean({k: v for k, v in observed.surfaces.items() if k.endswith("/metrics")})


def test_alerts_and_pages_name_nobody(observed: Observed, privacy_system: PrivacySystem) -> None:
    answers = observed.under("alerts ") | observed.under("dashboard GET /v1/alerts")
    assert b"immediate_confirmed" in answers["alerts GET /v1/alerts"]
    assert b'"sent"' in answers["alerts GET /v1/notifications?status=sent"]
    assert _pages(privacy_system), "the webhook was paged"
    _assert_clean(answers | observed.under("webhook "))


def test_read_api_and_command_centre_name_nobody(observed: Observed) -> None:
    answers = observed.under("aggregator GET /v1/units/") | observed.under("dashboard ")
    assert b'"new_confirmed":1' in answers[f"aggregator GET /v1/units/{COMMUNITY}/rollup"]
    live = answers["dashboard /v1/live stream"]
    assert b"event: rollup" in live and b"event: alert" in live
    _assert_clean(answers)


def test_the_public_summary_names_nobody_and_hides_the_single_case(observed: Observed) -> None:
    public = observed.under("public ")
    street = json.loads(public[f"public GET /v1/public/units/{STREET}/summary"])
    assert street["figures"]["new_confirmed"] == {"value": None, "suppressed": True}
    assert street["figures"]["screenings"] == {"value": None, "suppressed": True}, "3 screenings"
    assert street["figures"]["risk_level"] == "medium_or_high", "medium would bound the case"
    _assert_clean(public)


def test_the_scan_would_see_a_leak() -> None:
    """The scanner itself: it finds each form a number or a name could take."""
    assert leaks(f'{{"x": "{CONFIRMED.id_number}"}}'.encode())
    assert leaks(LOWER_X.id_number.lower().encode())
    assert leaks(mistyped(MISTYPED.id_number).encode())
    assert leaks(b'"\\u738b\\u79c0\\u82f1"'), "JSON-escaped 王秀英"
    assert leaks(b"%E7%8E%8B%E7%A7%80%E8%8B%B1"), "percent-encoded 王秀英"
    assert leaks(BY_NAME.name.encode())
    assert not leaks(pid(b"k" * 32, CONFIRMED.id_number).encode())


def test_the_residents_are_distinct_people() -> None:
    assert len({p.id_number for p in EVERYONE}) == len({p.name for p in EVERYONE}) == 9
