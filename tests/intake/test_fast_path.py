"""The ASGI fast path for POST /v1/events answers exactly as the FastAPI route does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from tests.support.events import COMMUNITY_A, screening
from zhibao_intake.bootstrap import create_app
from zhibao_intake.settings import IntakeSettings
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore


async def _answers(
    fast: bool, data_dir: Path, report: str, reader: str, event: bytes
) -> list[tuple[int, dict[str, str], bytes]]:
    settings = IntakeSettings(
        nats_url=f"nats://127.0.0.1:{free_port()}",  # nothing listens: publishing answers 503
        data_dir=data_dir,
        max_body_bytes=4096,
        intake_fast_path=fast,
    )
    app = create_app(settings)
    ce = "application/cloudevents+json"
    cases: list[tuple[dict[str, str], bytes]] = [
        ({"content-type": ce}, event),
        ({"authorization": "Bearer nope", "content-type": ce}, event),
        ({"authorization": f"Bearer {reader}", "content-type": ce}, event),
        ({"authorization": f"Bearer {report}", "content-type": "text/plain"}, event),
        ({"authorization": f"Bearer {report}", "content-type": ce}, b"{not json"),
        ({"authorization": f"Bearer {report}", "content-type": ce}, b"[]"),
        ({"authorization": f"Bearer {report}", "content-type": ce}, b" " * 5000),
        ({"authorization": f"Bearer {report}", "content-type": ce}, b'{"type": 1}'),
        ({"authorization": f"Bearer {report}", "content-type": ce}, event),
    ]
    transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        out = []
        for headers, body in cases:
            response = await client.post("/v1/events", content=body, headers=headers)
            kept = {k: v for k, v in response.headers.items() if k != "date"}
            out.append((response.status_code, kept, response.content))
    app.state.intake.tokens.close()
    return out


def test_fast_path_answers_like_the_fastapi_route(tmp_path: Path) -> None:
    tokens = TokenStore.in_data_dir(tmp_path)
    report = tokens.create(scopes=[COMMUNITY_A], role=Role.REPORT)[1]
    reader = tokens.create(scopes=[COMMUNITY_A], role=Role.READ)[1]
    tokens.close()
    event = json.dumps(screening()).encode()
    fast = asyncio.run(_answers(True, tmp_path, report, reader, event))
    slow = asyncio.run(_answers(False, tmp_path, report, reader, event))
    assert [a[0] for a in fast] == [401, 401, 403, 415, 400, 400, 413, 422, 503]
    assert fast == slow
