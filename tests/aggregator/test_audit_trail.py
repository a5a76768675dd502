"""The audit trail, read back: the whole system as ``zhibao up`` runs it.

A reporter submits an accepted and a rejected event, the command centre's
street acknowledges the alert a confirmed case raised, the district issues a
task and a token is created; each appears in ``GET /v1/audit`` and in
``zhibao audit`` with who, what, when and the unit, only to operate tokens
whose units cover it, every record once across pages, and each read recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.bus_run import declare_and_lift, issue_task, stack_env, wait_until
from tests.support.events import (
    COMMUNITY_A,
    COMMUNITY_B,
    case,
    correction,
    resident_id,
    screening,
)
from zhibao_cli.stack import Stack
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

DISTRICT, STREET_A, STREET_B = "640106", "640106001", "640106002"
SCREENING = "zhibao.screening.v1"


CORRECTION_ID = "audit-correction-1"


@dataclass
class Trail:
    """The running system, its tokens and what was done."""

    stack: Stack
    env: dict[str, str]
    tokens: dict[str, str]
    accepted: dict[str, Any]
    rejected: dict[str, Any]
    other_street: dict[str, Any]
    alert_id: int
    made_token: str

    def read(self, who: str, **params: Any) -> httpx.Response:
        """GET /v1/audit as one of the tokens."""
        return httpx.get(
            f"{self.stack.url('aggregator')}/v1/audit",
            params=params,
            headers={"authorization": f"Bearer {self.tokens[who]}"},
            timeout=30,
        )

    def records(self, who: str, **params: Any) -> list[dict[str, Any]]:
        """Every record the token may see with these filters (all pages)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            answer = self.read(who, **params, **({"cursor": cursor} if cursor else {}))
            assert answer.status_code == 200, answer.text
            body = answer.json()
            found += body["records"]
            cursor = body["next"]
            if cursor is None:
                return found


def _post(stack: Stack, token: str, events: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        f"{stack.url('intake')}/v1/events",
        json=events,
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


def _acknowledge_an_alert(stack: Stack, token: str) -> int:
    """The alert the confirmed case raised, acknowledged by the street's on-call token."""
    headers = {"authorization": f"Bearer {token}"}
    url = f"{stack.url('alerts')}/v1/alerts"
    found: list[int] = []

    def raised() -> bool:
        found[:] = [a["id"] for a in httpx.get(url, headers=headers, timeout=10).json()["alerts"]]
        return bool(found)

    wait_until("an alert", raised)
    answer = httpx.post(f"{url}/{found[0]}/ack", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return found[0]


def _create_template(stack: Stack, token: str) -> None:
    template = {
        "id": "street-isolation",
        "title": "{unit}居家隔离日报（{date}）",
        "rows": "community",
        "for": "street",
        "period": "today",
        "columns": [{"figure": "in_isolation", "heading": "居家隔离人数"}],
    }
    answer = httpx.post(
        f"{stack.url('aggregator')}/v1/templates",
        json=template,
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def _system(root: Path) -> Iterator[Trail]:
    env = stack_env(root)
    data = Path(env["ZHIBAO_DATA_DIR"])
    store = TokenStore.in_data_dir(data)
    tokens = {
        "reporter": store.create(scopes=[DISTRICT], role=Role.REPORT, name="gate 3")[1],
        "district": store.create(
            scopes=[DISTRICT], role=Role.OPERATE, name="district centre", person="李明 (区值班)"
        )[1],
        "street_a": store.create(
            scopes=[STREET_A], role=Role.OPERATE, name="street A on call", person="王芳 (街道)"
        )[1],
        "street_b": store.create(scopes=[STREET_B], role=Role.OPERATE, name="street B on call")[1],
        "reader": store.create(scopes=[DISTRICT], role=Role.READ, name="district reader")[1],
    }
    stack = Stack(env=env, data_dir=data, nats_url=env["ZHIBAO_NATS_URL"], quiet=True)
    try:
        with stack:
            accepted, rejected = screening(COMMUNITY_A), screening(COMMUNITY_A, temperature=52.0)
            other = screening(COMMUNITY_B)
            confirmed = case(person={"id_number": resident_id()}, classification="confirmed")
            answer = _post(stack, tokens["reporter"], [accepted, rejected, other, confirmed])
            assert answer.status_code == 207, answer.text
            fix = correction(other, reason="门岗重复录入", event_id=CORRECTION_ID)
            assert _post(stack, tokens["reporter"], [fix]).status_code == 202
            alert_id = _acknowledge_an_alert(stack, tokens["street_a"])
            issue_task(stack, tokens["district"])
            _create_template(stack, tokens["district"])
            made = store.create(scopes=[STREET_A], role=Role.REPORT, name="new gate")[0].id
            yield Trail(stack, env, tokens, accepted, rejected, other, alert_id, made)
    finally:
        store.close()


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trail]:
    """The system run once for the module, after the actions the tests look for."""
    yield from _system(tmp_path_factory.mktemp("audit"))


def _eventually(trail: Trail, who: str, match: dict[str, Any], **params: Any) -> dict[str, Any]:
    """The first record the token sees whose fields include ``match`` (waited for)."""
    seen: list[dict[str, Any]] = []

    def present() -> bool:
        records = trail.records(who, **params)
        seen[:] = [r for r in records if match.items() <= r.items()]
        return bool(seen)

    wait_until(f"a record with {match}", present)
    return seen[0]


def test_an_accepted_and_a_rejected_event_say_who_what_when_and_where(trail: Trail) -> None:
    accepted = _eventually(trail, "district", {"event_id": trail.accepted["id"]})
    assert accepted["outcome"] == "accepted"
    assert accepted["type"] == SCREENING
    assert accepted["unit"] == COMMUNITY_A
    assert accepted["token_name"] == "gate 3"
    assert accepted["event_source"] == trail.accepted["source"]
    assert accepted["event_time"] is not None
    assert accepted["at"] >= accepted["event_time"][:19]
    rejected = _eventually(trail, "district", {"event_id": trail.rejected["id"]})
    assert rejected["outcome"] == "rejected"
    assert rejected["code"] == "invalid"
    assert rejected["unit"] == COMMUNITY_A
    assert rejected["token"] == accepted["token"]
    only = trail.records("district", outcome="rejected", type=SCREENING)
    assert [r["event_id"] for r in only] == [trail.rejected["id"]]


def test_a_correction_is_listed_with_what_it_corrects_its_reason_and_author(
    trail: Trail,
) -> None:
    fix = _eventually(trail, "district", {"event_id": CORRECTION_ID})
    assert fix["type"] == "zhibao.correction.v1" and fix["outcome"] == "accepted"
    assert fix["token_name"] == "gate 3"
    assert fix["detail"] == {
        "corrects": {"source": trail.other_street["source"], "id": trail.other_street["id"]},
        "action": "retract",
        "reason": "门岗重复录入",
    }


def test_the_scorecard_counts_the_rejected_event_by_its_reason(trail: Trail) -> None:
    """The data-quality scorecard takes intake's rejections from the trail's read model."""
    seen: dict[str, Any] = {}

    def counted() -> bool:
        answer = httpx.get(
            f"{trail.stack.url('aggregator')}/v1/units/{COMMUNITY_A}/quality",
            headers={"authorization": f"Bearer {trail.tokens['reader']}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        seen.update(answer.json()["unit"]["quality"])
        return bool(seen["rejected_by_reason"])

    wait_until("the rejection in the scorecard", counted)
    assert seen["rejected_by_reason"] == {"invalid": 1}
    assert seen["rejected"] == 1


def test_an_acknowledgement_a_task_issue_and_a_new_token_are_recorded(trail: Trail) -> None:
    ack = _eventually(trail, "district", {"type": "alert.acknowledged"})
    assert ack["target"] == str(trail.alert_id)
    assert ack["token_name"] == "street A on call"
    assert ack["unit"].startswith(STREET_A)
    assert ack["service"] == "alerts"
    assert ack["person"] == "王芳 (街道)", "the person who acknowledged, not only the token"
    issued = _eventually(trail, "district", {"type": "task.issued"})
    assert issued["token_name"] == "district centre"
    assert issued["unit"] == COMMUNITY_A
    assert issued["detail"] == {"kind": "verify_contact"}
    template = _eventually(trail, "district", {"type": "template.created"})
    assert template["target"] == "street-isolation" and template["unit"] == DISTRICT
    assert template["person"] == "李明 (区值班)"
    made = _eventually(trail, "street_a", {"type": "token.created", "target": trail.made_token})
    assert made["unit"] == STREET_A
    assert made["detail"]["name"] == "new gate"


def test_silences_resolutions_levels_and_points_are_recorded(trail: Trail) -> None:
    headers = {"authorization": f"Bearer {trail.tokens['street_a']}"}
    alerts = trail.stack.url("alerts")
    matchers = [{"name": "community", "value": COMMUNITY_A}]
    body = {"matchers": matchers, "duration_minutes": 60, "comment": "drill"}
    made = httpx.post(f"{alerts}/v1/silences", json=body, headers=headers, timeout=10)
    assert made.status_code == 201, made.text
    silence = str(made.json()["id"])
    expired = httpx.delete(f"{alerts}/v1/silences/{silence}", headers=headers, timeout=10)
    assert expired.status_code == 200, expired.text
    resolved = httpx.post(f"{alerts}/v1/alerts/{trail.alert_id}/resolve", headers=headers)
    assert resolved.status_code == 200, resolved.text
    declare_and_lift(trail.stack, trail.tokens["district"])
    for action, target in (
        ("silence.created", silence),
        ("silence.expired", silence),
        ("alert.resolved", str(trail.alert_id)),
    ):
        found = _eventually(trail, "street_a", {"type": action, "target": target})
        assert found["token_name"] == "street A on call"
        assert found["unit"] == COMMUNITY_A
    for action in ("level.declared", "level.lifted", "point.declared", "point.lifted"):
        found = _eventually(trail, "street_a", {"type": action})
        assert (found["token_name"], found["unit"]) == ("district centre", COMMUNITY_A)
        assert found["service"] == "response"


def test_a_street_never_sees_another_streets_records(trail: Trail) -> None:
    _eventually(trail, "street_b", {"event_id": trail.other_street["id"]})
    _eventually(trail, "district", {"type": "alert.acknowledged"})
    seen = trail.records("street_b")
    assert seen
    assert all(r["unit"].startswith(STREET_B) for r in seen)
    assert trail.read("street_b", unit=STREET_A).status_code == 403
    assert trail.read("street_b", unit=COMMUNITY_A).status_code == 403
    assert trail.read("reader").status_code == 403, "read tokens may not read the trail"
    assert trail.read("reporter").status_code == 403


def test_pages_return_every_record_exactly_once(trail: Trail) -> None:
    _eventually(trail, "district", {"event_id": trail.other_street["id"]})
    everything = trail.records("district", type=SCREENING, limit=500)
    assert len(everything) >= 3
    paged = trail.records("district", type=SCREENING, limit=1)
    assert paged == everything
    keys = [(r["at"], r["event_id"], r["outcome"]) for r in paged]
    assert len(set(keys)) == len(keys)


def test_bad_parameters_are_named(trail: Trail) -> None:
    for params, name in (
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-02T10:00:00"}, "from"),
        ({"outcome": "lost"}, "outcome"),
        ({"limit": 0}, "limit"),
        ({"unit": "64x"}, "unit"),
        ({"from": "2026-01-03", "to": "2026-01-01"}, "to"),
    ):
        answer = trail.read("district", **params)
        assert answer.status_code == 422, (params, answer.text)
        assert name in json.dumps(answer.json()["detail"]), params


def test_reading_the_trail_is_recorded(trail: Trail) -> None:
    assert trail.read("street_a", outcome="rejected", unit=COMMUNITY_A).status_code == 200
    mine = {"type": "audit.read", "token_name": "street A on call", "unit": COMMUNITY_A}
    read = _eventually(trail, "district", mine)
    assert read["service"] == "aggregator"
    assert read["detail"]["outcome"] == "rejected"
    assert read["detail"]["unit"] == COMMUNITY_A


def test_the_cli_prints_the_records(trail: Trail) -> None:
    _eventually(trail, "district", {"event_id": trail.rejected["id"]})
    env = {**trail.env, "ZHIBAO_TOKEN": trail.tokens["district"]}
    command = [sys.executable, "-m", "zhibao_cli", "audit", "--unit", COMMUNITY_A]
    table = subprocess.run(
        [*command, "--type", SCREENING], env=env, capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("AT (UTC)")
    [rejected] = [line for line in lines if trail.rejected["id"] in line]
    assert COMMUNITY_A in rejected and "rejected" in rejected and "gate 3" in rejected
    assert any(trail.accepted["id"] in line and "accepted" in line for line in lines)
    as_json = subprocess.run(
        [*command, "--json", "--outcome", "rejected"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert as_json.returncode == 0, as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert trail.rejected["id"] in {r["event_id"] for r in records}
    assert {r["outcome"] for r in records} == {"rejected"}
    refused = subprocess.run(
        [*command, "--token", trail.tokens["reader"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "403" in refused.stderr
