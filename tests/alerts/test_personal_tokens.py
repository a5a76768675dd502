"""Acting on alerts takes a personal token (ZHIBAO_ALERTS_REQUIRE_PERSONAL_TOKENS), in the
running app: a shared system token is refused 403 naming the rule for every action and
may still read; with the rule off it may act, and the timeline names the token. And the
person columns reach databases made before them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.alerts.conftest import COMMUNITY
from tests.alerts.task_support import RunningAlerts, running_alerts
from tests.support.webhook import Receiver
from zhibao_alerts import store
from zhibao_alerts.tables import alerts
from zhibao_shared.db import make_engine, sqlite_url
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import Role, TokenStore

RULE = "ZHIBAO_ALERTS_REQUIRE_PERSONAL_TOKENS"
SILENCE = {
    "matchers": [{"name": "community", "value": COMMUNITY}],
    "duration_minutes": 30,
    "comment": "handled on site",
}


@asynccontextmanager
async def alerts_with_one_alert(
    tmp_path: Path, nats_url: str, receiver: Receiver, **overrides: Any
) -> AsyncIterator[tuple[RunningAlerts, int, str]]:
    """The app, one firing alert of the community, and a shared (system) operate token."""
    data = tmp_path / "alerts-data"
    async with running_alerts(tmp_path, nats_url, receiver, data_dir=data, **overrides) as app:
        tokens = TokenStore.in_data_dir(data)
        shared = tokens.create(scopes=["640106"], role=Role.OPERATE, name="district system")[1]
        tokens.close()
        engine = make_engine(sqlite_url(data, "alerts"))
        async with engine.begin() as conn:
            alert = _alert(app)
            alert_id = (await store.insert_alerts(conn, [alert]))[alert["dedup_key"]].id
        await engine.dispose()
        yield app, alert_id, shared


def _alert(app: RunningAlerts) -> dict[str, Any]:
    now = app.clock()
    return {
        "dedup_key": f"immediate_confirmed:{COMMUNITY}:test",
        "rule": "immediate_confirmed",
        "unit": COMMUNITY,
        "window": "test",
        "severity": "critical",
        "state": "firing",
        "summary_zh": "确诊病例",
        "summary_en": "a confirmed case",
        "day": now.date(),
        "occurrences": 1,
        "fired_at": now,
        "escalation_step": 0,
        "last_notified_at": now,
    }


async def test_a_shared_token_may_read_but_not_act(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    async with alerts_with_one_alert(tmp_path, nats_server.url, webhook) as (app, alert_id, shared):
        client, headers = app.client, app.auth(shared)
        assert (await client.get(f"/v1/alerts/{alert_id}", headers=headers)).status_code == 200
        actions = [
            ("acknowledge an alert", client.post(f"/v1/alerts/{alert_id}/ack", headers=headers)),
            ("resolve an alert", client.post(f"/v1/alerts/{alert_id}/resolve", headers=headers)),
            ("create a silence", client.post("/v1/silences", json=SILENCE, headers=headers)),
            ("expire a silence", client.delete("/v1/silences/1", headers=headers)),
        ]
        for what, request in actions:
            answer = await request
            assert answer.status_code == 403, (what, answer.text)
            assert what in answer.json()["detail"] and RULE in answer.json()["detail"]
        assert (await app.detail(alert_id))["state"] == "firing"


async def test_with_the_rule_off_a_shared_token_acts_and_the_timeline_names_it(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    async with alerts_with_one_alert(
        tmp_path, nats_server.url, webhook, alerts_require_personal_tokens=False
    ) as (app, alert_id, shared):
        ack = await app.client.post(f"/v1/alerts/{alert_id}/ack", headers=app.auth(shared))
        assert ack.status_code == 200, ack.text
        detail = await app.detail(alert_id)
        assert (detail["acknowledged_by"], detail["acknowledged_by_person"]) == (
            "district system",
            None,
        )
        [acknowledged] = [e for e in detail["timeline"] if e["action"] == "acknowledged"]
        assert acknowledged["detail"] == "acknowledged by token district system"
        assert acknowledged["person"] is None


async def test_a_database_from_before_persons_gains_the_columns_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    """Migration 0012 on a database without the person columns (its own downgrade makes
    one): the acknowledged alert and the silence stay, their persons unknown (null)."""
    engine = make_engine(sqlite_url(tmp_path, "alerts"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic(sync), "head"))
            await conn.run_sync(lambda sync: command.downgrade(_alembic(sync), "0011"))
            assert "acknowledged_by_person" not in await _columns(conn, "alerts")
            await conn.execute(text(OLD_ALERT), {"at": datetime.now(UTC).isoformat()})
            await conn.run_sync(lambda sync: command.upgrade(_alembic(sync), "head"))
            for table, column in [
                ("alerts", "resolved_by_person"),
                ("alert_timeline", "person"),
                ("silences", "expired_by_person"),
            ]:
                assert column in await _columns(conn, table)
            row = (await conn.execute(select(alerts))).one()
    finally:
        await engine.dispose()
    assert (row.acknowledged_by, row.acknowledged_by_person) == ("old console", None)


OLD_ALERT = (
    "INSERT INTO alerts (dedup_key, rule, unit, window, severity, state, summary_zh, "
    "summary_en, day, occurrences, fired_at, acknowledged_at, acknowledged_by, "
    "escalation_step) VALUES ('k', 'immediate_confirmed', '640106001001', 'w', 'critical', "
    "'acknowledged', '确诊', 'confirmed', '2026-03-02', 1, :at, :at, 'old console', 0)"
)


async def _columns(conn: AsyncConnection, table: str) -> set[str]:
    def names(sync: Connection) -> set[str]:
        return {column["name"] for column in inspect(sync).get_columns(table)}

    return await conn.run_sync(names)


def _alembic(connection: Connection) -> Config:
    config = Config()
    location = resources.files("zhibao_alerts").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config
