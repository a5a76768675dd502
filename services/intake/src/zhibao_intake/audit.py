"""The accountability trail: every submission attributed, in an append-only stream.

Each record says who (token id and name, or an unauthenticated caller's
address), when, over which channel, and per event: id, source, community,
type and outcome. Records carry no personal data. The ZHIBAO_AUDIT stream
refuses deletes and purges, so the trail can only grow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from zhibao_intake.domain.outcome import SubmissionResult
from zhibao_shared.broker import bus_connected
from zhibao_shared.subjects import AUDIT_STREAM, audit_subject
from zhibao_shared.tokens import Token

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as intake knows."""

    channel: str
    remote: str | None
    token: Token | None


def audit_record(
    caller: Caller, result: SubmissionResult | None, *, status: int, items: list[Any] | None = None
) -> dict[str, Any]:
    """The audit record of one submission (or of a refusal before admission)."""
    record: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "channel": caller.channel,
        "remote": caller.remote,
        "token": caller.token.id if caller.token else None,
        "token_name": caller.token.name if caller.token else None,
        "status": status,
    }
    if result is not None and items is not None:
        record["events"] = [
            _event_line(r.model_dump(mode="json", exclude_none=True), item)
            for r, item in zip(result.results, items, strict=True)
        ]
    return record


def _event_line(result: dict[str, Any], item: Any) -> dict[str, Any]:
    line: dict[str, Any] = {k: result[k] for k in ("id", "source", "status", "code") if k in result}
    if isinstance(item, dict):
        for key in ("subject", "type"):
            if isinstance(item.get(key), str):
                line[key] = item[key][:64]
    return line


class AuditTrail:
    """Appends audit records to JetStream; falls back to the log when NATS is down."""

    def __init__(self, broker: NatsBroker, timeout_s: float) -> None:
        self._broker = broker
        self._timeout_s = timeout_s

    async def append(self, record: dict[str, Any]) -> None:
        """Append one record (never raises: auditing must not fail a submission)."""
        action = "submission" if "events" in record else "refusal"
        if bus_connected(self._broker):
            try:
                await self._broker.publish(
                    json.dumps(record, ensure_ascii=False).encode(),
                    audit_subject("intake", action),
                    stream=AUDIT_STREAM,
                    timeout=self._timeout_s,
                )
                return
            except (NatsError, TimeoutError, OSError) as exc:
                log.warning("audit_publish_failed", error=str(exc))
        log.info("audit", **record)
