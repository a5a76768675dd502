"""Request-reply refusals in memory: no JetStream involved, so TestNatsBroker is honest."""

from __future__ import annotations

import json
from pathlib import Path

from faststream.nats import TestNatsBroker

from tests.support.events import COMMUNITY_A, screening
from zhibao_intake.bootstrap import build
from zhibao_intake.settings import IntakeSettings
from zhibao_shared.subjects import INTAKE_SUBMIT
from zhibao_shared.tokens import Role


async def test_refusals_over_nats(tmp_path: Path) -> None:
    intake = build(IntakeSettings(data_dir=tmp_path))
    reader = intake.tokens.create(scopes=[COMMUNITY_A], role=Role.READ)[1]
    reporter = intake.tokens.create(scopes=[COMMUNITY_A], role=Role.REPORT)[1]
    async with TestNatsBroker(intake.broker) as broker:

        async def ask(body: bytes, token: str | None) -> dict[str, object]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            reply = await broker.request(body, INTAKE_SUBMIT, headers=headers)
            return dict(json.loads(reply.body))

        event = json.dumps(screening()).encode()
        assert (await ask(event, None))["status"] == 401
        assert (await ask(event, reader))["status"] == 403
        bad = await ask(b"{not json", reporter)
        assert bad["status"] == 400 and "JSON" in str(bad["detail"])
        assert (await ask(b"[]", reporter))["status"] == 400
