"""The AsyncAPI document states the bus as it is: its subjects, payloads and permissions.

Against the real system (as ``zhibao up`` runs it): every subject a service
publishes on is exactly one channel of the document and every message
validates against that channel's schemas; intake serves the generated
document. Against a real nats-server configured from ``bus_access``: the
users each channel declares may publish and subscribe exactly where the server
lets them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from tests.security.asyncapi_checks import asyncapi_problems, resolve
from tests.security.bus_run import POISON, BusRun, Seen, recorded_run
from zhibao_alerts.domain.config import Severity
from zhibao_cli.main import app
from zhibao_intake.asyncapi_route import bus_document
from zhibao_shared.asyncapi import CHANNELS, SEVERITIES, ChannelSpec
from zhibao_shared.bus_access import ALL_USERS, accounts_block, bus_users, quote_password
from zhibao_shared.bus_permissions import matches
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration

DOCUMENT = bus_document()
#: Example values of parameters without an enumeration.
EXAMPLES = {
    "district": "640106",
    "community": "640106001001",
    "unit": "640106001001",
    "code": "640106001",
    "subject": "zhibao.events.640106.bundle",
}


@pytest.fixture(scope="module")
def bus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BusRun]:
    """The system run once for the module, with everything it put on the bus."""
    with recorded_run(tmp_path_factory.mktemp("asyncapi")) as run:
        yield run


def channel_of(subject: str) -> list[ChannelSpec]:
    """The document's channels whose address (and enumerated parameters) ``subject`` fits."""
    return [spec for spec in CHANNELS if spec.carries(subject)]


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` resolving the document's ``#/components/...``."""
    return Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def problems_of(message: dict[str, Any], seen: Seen) -> list[str]:
    """How an observed message departs from the document's message (payload, headers)."""
    if "headers" in message:
        errors = list(validator(message["headers"]).iter_errors(seen.headers))
    else:
        errors = []
    payload = validator(message["payload"])
    if message["contentType"] == "application/octet-stream":
        documents: list[Any] = []
    elif message["contentType"] == "application/jsonl":
        documents = [json.loads(line) for line in seen.data.splitlines()]
    else:
        documents = [json.loads(seen.data)]
    for document in documents:
        errors += payload.iter_errors(document)
    return [f"{seen.subject}: {e.json_path}: {e.message}" for e in errors]


def channel_message(key: str) -> dict[str, Any]:
    """The (only) message of a channel, resolved."""
    [ref] = DOCUMENT["channels"][key]["messages"].values()
    message: dict[str, Any] = resolve(DOCUMENT, ref["$ref"])
    return message


def test_the_document_is_asyncapi_3() -> None:
    assert asyncapi_problems(DOCUMENT) == []
    assert json.loads(json.dumps(DOCUMENT)) == DOCUMENT


def test_alert_severities_are_the_alerts_service_severities() -> None:
    assert set(SEVERITIES) == {s.value for s in Severity}


def test_intake_serves_the_generated_document_without_a_token(bus_run: BusRun) -> None:
    answer = httpx.get(f"{bus_run.stack.url('intake')}/asyncapi.json")
    assert answer.status_code == 200
    assert answer.json() == json.loads(json.dumps(DOCUMENT))


def test_every_zhibao_subject_on_the_bus_is_exactly_one_channel(bus_run: BusRun) -> None:
    subjects = {m.subject for m in bus_run.messages}
    ours = {s for s in subjects if s.startswith("zhibao.")}
    assert {s: len(channel_of(s)) for s in ours} == dict.fromkeys(ours, 1)
    observed = {channel_of(s)[0].key for s in ours}
    assert observed == {spec.key for spec in CHANNELS}, "some channel never carried traffic"
    # Everything else is the JetStream API and inbox replies, as the document says.
    assert {s.split(".")[0] for s in subjects - ours} <= {"$JS", "_INBOX"}


def test_every_message_validates_against_its_channel(bus_run: BusRun) -> None:
    problems: list[str] = []
    for seen in bus_run.messages:
        if seen.subject.startswith("zhibao.") and seen.data != POISON:
            [spec] = channel_of(seen.subject)
            problems += problems_of(channel_message(spec.key), seen)
    assert problems == []


def test_answers_to_submissions_validate_against_the_reply_message(bus_run: BusRun) -> None:
    requests = [m for m in bus_run.messages if m.subject == "zhibao.intake.submit"]
    reply_subjects = {m.reply for m in requests}
    replies = [m for m in bus_run.messages if m.subject in reply_subjects]
    assert len(requests) == len(replies) == 2
    assert sorted(json.loads(r.data)["status"] for r in replies) == [202, 401]
    message = channel_message("intakeSubmitReply")
    assert [p for r in replies for p in problems_of(message, r)] == []


def samples(spec: ChannelSpec) -> list[str]:
    """Concrete subjects of a channel: each enumerated value, else an example."""
    subjects = [spec.address]
    for name, parameter in spec.parameters.items():
        values = parameter.get("enum") or [EXAMPLES[name]]
        subjects = [s.replace(f"{{{name}}}", v) for s in subjects for v in values]
    return subjects


def declared(action: str, spec: ChannelSpec, user: str, subject: str) -> bool:
    """Whether the document lets ``user`` publish (send) or subscribe (receive) there."""
    permitted = DOCUMENT["operations"][f"{action}_{spec.key}"]["x-zhibao-bus-users"]
    return any(matches(p, subject) for p in permitted.get(user, []))


async def enforced(url: str, probes: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    """For each (action, subject): whether the server let this user do it (no
    permissions violation naming it)."""
    violations: list[str] = []

    async def collect(error: Exception) -> None:
        violations.append(str(error).lower())

    client = await nats.connect(url, error_cb=collect, allow_reconnect=False)
    try:
        for action, subject in probes:
            if action == "send":
                await client.publish(subject, b"{}")
            else:
                await (await client.subscribe(subject)).unsubscribe()
            await client.flush()
        await client.flush()
    finally:
        await client.close()
    verbs = {"send": "publish to", "receive": "subscription to"}
    return {
        (action, subject): not any(f'{verbs[action]} "{subject}"' in v for v in violations)
        for action, subject in probes
    }


def test_each_channel_declares_the_users_nats_server_lets_use_it(tmp_path: Path) -> None:
    """Every user, every concrete subject of every channel, publish and subscribe."""
    passwords = {name: f"secret-{name}" for name in ALL_USERS}
    quoted = {name: quote_password(p) for name, p in passwords.items()}
    server = NatsServer(tmp_path / "js", accounts=accounts_block(bus_users(), quoted))
    server.start()
    probes = [(a, s) for spec in CHANNELS for s in samples(spec) for a in ("send", "receive")]
    try:
        for user in ALL_USERS:
            url = f"nats://{user}:{passwords[user]}@{server.host}:{server.port}"
            actual = asyncio.run(enforced(url, probes))
            expected = {
                (a, s): declared(a, spec, user, s)
                for spec in CHANNELS
                for s in samples(spec)
                for a in ("send", "receive")
            }
            assert actual == expected, user
    finally:
        server.stop()


def test_the_cli_prints_the_same_document() -> None:
    result = CliRunner().invoke(app, ["asyncapi"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(json.dumps(DOCUMENT))


def test_task_results_are_documented_without_a_clear_note() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    events = DOCUMENT["channels"]["events"]["parameters"]["type"]["enum"]
    assert "task_result" in events
    published = schemas["PublishedTaskResultData"]["properties"]
    assert {"task", "outcome", "method", "measures", "person", "kind", "sealed_note"} <= set(
        published
    )
    assert "note" not in published
    assert "note" in schemas["ReportedTaskResultData"]["properties"]


def test_levels_and_points_are_channels_of_the_tasks_stream_read_by_the_aggregator() -> None:
    subjects = {
        "zhibao.tasks.640106.640106001.level": "levels",
        "zhibao.tasks.640106.640106001001.point": "points",
        "zhibao.tasks.640106.640106001001.issued": "tasks",
    }
    assert {s: [c.key for c in channel_of(s)] for s in subjects} == {
        s: [key] for s, key in subjects.items()
    }
    for key in ("levels", "points"):
        receive = DOCUMENT["operations"][f"receive_{key}"]
        assert receive["x-zhibao-stream-readers"] == {
            "stream": "ZHIBAO_TASKS",
            "users": ["aggregator", "ops"],
            "durables": {"aggregator": ["aggregator-levels"]},
        }
        assert list(DOCUMENT["operations"][f"send_{key}"]["x-zhibao-bus-users"]) == [
            "response",
            "ops",
        ]
    readers = DOCUMENT["operations"]["receive_tasks"]["x-zhibao-stream-readers"]
    assert readers["durables"] == {"aggregator": ["aggregator-tasks"], "alerts": ["alerts-tasks"]}
