"""NATS-native entry point: request-reply on ``zhibao.intake.submit``.

The request carries the same CloudEvents JSON as the HTTP body and an
``Authorization: Bearer`` header; the reply is the same per-item answer plus
the HTTP-equivalent ``status``.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.nats import NatsMessage, NatsRouter

from zhibao_intake.submission import SubmissionRefused, SubmissionService, decode_items, http_status
from zhibao_shared.subjects import INTAKE_QUEUE, INTAKE_SUBMIT
from zhibao_shared.tokens import Role, TokenStore, bearer_secret


def _error(status: int, detail: str) -> bytes:
    return json.dumps({"status": status, "detail": detail}).encode()


def build_nats_router(
    service: SubmissionService, tokens: TokenStore, *, max_body_bytes: int, max_items: int
) -> NatsRouter:
    """A router answering submissions over NATS request-reply."""
    router = NatsRouter()

    @router.subscriber(INTAKE_SUBMIT, queue=INTAKE_QUEUE)
    async def submit(msg: NatsMessage) -> bytes:
        headers: dict[str, Any] = msg.headers or {}
        secret = bearer_secret(headers.get("Authorization") or headers.get("authorization"))
        token = tokens.authenticate(secret) if secret else None
        if token is None:
            return _error(401, "a valid bearer token is required in the Authorization header")
        if not token.role.permits(Role.REPORT):
            return _error(403, f"a {token.role} token may not report events")
        if len(msg.body) > max_body_bytes:
            return _error(413, f"the message exceeds {max_body_bytes} bytes")
        try:
            items = decode_items(msg.body, headers.get("content-type"), max_items)
        except SubmissionRefused as exc:
            return _error(exc.status, str(exc))
        result = await service.submit(items, token)
        answer = result.model_dump(mode="json", exclude_none=True)
        answer["status"] = http_status(result)
        return json.dumps(answer).encode()

    return router
