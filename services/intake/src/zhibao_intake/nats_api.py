"""NATS-native entry point: request-reply on ``zhibao.intake.submit``.

The request carries the same CloudEvents JSON as the HTTP body and an
``Authorization: Bearer`` header; the reply is the same JSON answer plus the
HTTP-equivalent ``status`` (and ``retry_after`` when the caller should wait).

Answers go only to the community ingress user's inbox (``_INBOX.community.``): the bus
lets intake publish its answer wherever a request's reply subject says, so a request
naming another subject (the tasks stream, another service's audit records or inbox) is
neither processed nor answered, only counted. A message with no reply subject at all is
processed like a request whose answer nobody waits for.
"""

import json
from typing import Any

from faststream.exceptions import SkipMessage
from faststream.nats import NatsMessage, NatsRouter

from zhibao_intake.audit import Caller
from zhibao_intake.gateway import Answer, Gateway
from zhibao_shared.bus_access import INGRESS_USER, inbox_prefix
from zhibao_shared.subjects import INTAKE_QUEUE, INTAKE_SUBMIT

#: Where answers may go: the inboxes of community systems (the ingress user's prefix).
ANSWERABLE_PREFIX = f"{inbox_prefix(INGRESS_USER)}."


def answerable(reply_to: str) -> bool:
    """True when a request's answer may be sent to ``reply_to`` (none: nothing is sent)."""
    return not reply_to or reply_to.startswith(ANSWERABLE_PREFIX)


def _reply(answer: Answer) -> bytes:
    body = {**answer.body, "status": answer.status}
    if answer.retry_after is not None:
        body["retry_after"] = answer.retry_after
    return json.dumps(body, ensure_ascii=False).encode()


def build_nats_router(gateway: Gateway) -> NatsRouter:
    """A router answering submissions over NATS request-reply."""
    router = NatsRouter()

    @router.subscriber(INTAKE_SUBMIT, queue=INTAKE_QUEUE)
    async def submit(msg: NatsMessage) -> bytes:
        headers: dict[str, Any] = msg.headers or {}
        caller = Caller("nats", None, None)
        if not answerable(msg.reply_to):
            gateway.misdirected(caller)
            raise SkipMessage  # no answer is published
        authorization = headers.get("Authorization") or headers.get("authorization")
        token = await gateway.authenticate(authorization, caller)
        if isinstance(token, Answer):
            return _reply(token)
        caller = Caller("nats", None, token)
        if len(msg.body) > gateway.limits.max_body_bytes:
            return _reply(await gateway.too_large(caller))
        return _reply(await gateway.submit(caller, msg.body, headers.get("content-type")))

    return router
