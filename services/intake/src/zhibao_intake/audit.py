"""Intake's records in the accountability trail: every submission attributed.

Each record says who (token id and name, or an unauthenticated caller's
address), when, over which channel, and per event: id, source, community,
type and outcome. Records carry no personal data. They are appended to the
ZHIBAO_AUDIT stream by the trail every service uses (:mod:`zhibao_shared.audit`).

Refusals of whole requests are not recorded one by one (anyone can cause them,
and a token past its own limits as often as it likes): they are counted per window
(see :mod:`zhibao_intake.domain.refusal_tally`) and each window becomes one record
per channel, address, status, reason and token, with ``count``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faststream.nats import NatsBroker

from zhibao_intake.domain.outcome import Status
from zhibao_intake.domain.refusal_tally import ClosedWindow, RefusalKey, RefusalTally
from zhibao_shared.audit import AuditTrail as SharedTrail
from zhibao_shared.events import EventType
from zhibao_shared.resident_id import mask_identifiers, mask_phone_numbers, masked_within
from zhibao_shared.tokens import Token

#: Longest ``subject``, ``type`` or ``time`` of a refused event the trail repeats.
_MAX_FIELD = 64


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as intake knows."""

    channel: str
    remote: str | None
    token: Token | None


def audit_record(
    caller: Caller,
    results: list[dict[str, Any]] | None,
    *,
    status: int,
    items: list[Any] | None = None,
) -> dict[str, Any]:
    """The audit record of one submission.

    ``results`` are the per-item answers as sent to the caller (JSON form, in
    submission order) and ``items`` the submitted items they answer.
    """
    record: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "channel": caller.channel,
        "remote": caller.remote,
        "token": caller.token.id if caller.token else None,
        "token_name": caller.token.name if caller.token else None,
        "person": _person(caller.token),
        "scopes": list(caller.token.scopes) if caller.token else None,
        "status": status,
    }
    if results is not None and items is not None:
        record["events"] = [
            _event_line(result, item) for result, item in zip(results, items, strict=True)
        ]
    return record


def _person(token: Token | None) -> str | None:
    """The person a personal token belongs to, when tokens carry one."""
    person = getattr(token, "person", None)
    return person if isinstance(person, str) else None


def tally_records(window: ClosedWindow) -> list[dict[str, Any]]:
    """One audit record per key of a closed window of refusals (the token's, if any)."""
    start = datetime.fromtimestamp(window.start, UTC)
    end = datetime.fromtimestamp(window.start + window.length, UTC)
    return [
        {
            "at": end.isoformat(),
            "from": start.isoformat(),
            "channel": key.channel,
            "remote": key.remote,
            "token": key.token.id if key.token else None,
            "token_name": key.token.name if key.token else None,
            "person": _person(key.token),
            "scopes": list(key.token.scopes) if key.token else None,
            "status": key.status,
            "reason": key.reason,
            "count": count,
        }
        for key, count in window.counts.items()
    ]


def _event_line(result: dict[str, Any], item: Any) -> dict[str, Any]:
    line: dict[str, Any] = {k: result[k] for k in ("status", "code") if k in result}
    if result["status"] != Status.REJECTED:
        # Admitted: id and source passed the resident-ID and mobile-number check,
        # subject and type were validated, so there is nothing to mask.
        line |= {k: result[k] for k in ("id", "source")}
        line |= {k: item[k] for k in ("subject", "type")}
        if isinstance(item.get("time"), str):
            line["time"] = item["time"]
        if item["type"] == EventType.CORRECTION.value:
            line["correction"] = _correction(item["data"])
        return line
    # A refused event's fields are as submitted: anything shaped like a resident ID
    # (an ID number as event id, or as CloudEvents subject) and phone numbers are masked.
    for key in ("id", "source"):
        if key in result:
            line[key] = mask_identifiers(result[key])
    if isinstance(item, dict):
        for key in ("subject", "type", "time"):
            value = item.get(key)
            masked = masked_within(value, _MAX_FIELD) if isinstance(value, str) else None
            if masked is not None:  # one too long to repeat is left out
                line[key] = masked
    return line


def _correction(data: dict[str, Any]) -> dict[str, Any]:
    """What an admitted correction changes and why (its reason passed the resident-ID
    check; phone numbers in it are masked, as on the bus: ``data`` is as submitted; the
    replacement's data is left out, it may name a person)."""
    line: dict[str, Any] = {
        k: data[k] for k in ("corrects", "action", "reason", "type") if k in data
    }
    if isinstance(line.get("reason"), str):
        line["reason"] = mask_phone_numbers(line["reason"])
    return line


class AuditTrail(SharedTrail):
    """Intake's trail: the shared one (:class:`zhibao_shared.audit.AuditTrail`) on
    ``zhibao.audit.intake.submissions``, which also tallies refusals of whole requests
    per window (callers without a valid token, and a token's own: its role, limits,
    budget, an unreadable body)."""

    def __init__(
        self,
        broker: NatsBroker,
        timeout_s: float,
        *,
        flush_interval_s: float = 0.2,
        batch_size: int = 500,
        max_buffer: int = 50_000,
        refusal_window_s: float = 60.0,
    ) -> None:
        super().__init__(
            broker,
            timeout_s,
            "intake",
            flush_interval_s=flush_interval_s,
            batch_size=batch_size,
            max_buffer=max_buffer,
        )
        self._tally = RefusalTally(refusal_window_s)

    def count_refusal(self, caller: Caller, status: int, reason: str) -> None:
        """Count a refusal of a whole request (recorded per window, with the token)."""
        key = RefusalKey(caller.channel, caller.remote, status, reason, caller.token)
        self._append_window(self._tally.add(key, time.time()))

    def before_flush(self, now: float | None) -> None:
        """Append the tallies of the windows that closed (all of them at the end)."""
        self._append_window(self._tally.close(now))

    def _append_window(self, window: ClosedWindow | None) -> None:
        for record in tally_records(window) if window is not None else []:
            self.append(record)
