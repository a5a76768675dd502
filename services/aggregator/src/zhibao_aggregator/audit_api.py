"""``GET /v1/audit``: the audit trail, read by operate tokens within their units.

Reading is itself recorded: every page answered appends an ``audit.read`` action
record with the filters to the trail.
"""

# No `from __future__ import annotations`: FastAPI resolves the closures' annotations.

import base64
import binascii
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.storage.audit import TrailQuery, read_trail
from zhibao_shared.audit import AuditTrail
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import unprocessable
from zhibao_shared.resident_id import mask_identifiers
from zhibao_shared.tokens import Role, Token

MAX_LIMIT = 500
Outcome = Literal["accepted", "duplicate", "rejected", "unavailable", "refused", "done"]
_SORT_KEY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\|[a-z]+\|\d{20}\|\d{6}\|\d{6}$")
_DAY = re.compile(r"^\d{4}-\d\d-\d\d$")
#: Anything but NUL (which PostgreSQL cannot compare with).
_NO_NUL = r"^[^\x00]*$"


def encode_cursor(sort_key: str) -> str:
    """The opaque cursor of the next page."""
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The key a cursor stands for, or a 422 if this API never gave it."""
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not _SORT_KEY.match(key):
        raise unprocessable(("query", "cursor"), "not a cursor this API gave (use `next`)")
    return key


def moment(text: str | None, name: str, calendar: Calendar, *, end: bool) -> datetime | None:
    """``from``/``to``: a day (YYYY-MM-DD, district time; ``to`` includes the whole day) or
    an RFC 3339 time with its offset."""
    if text is None:
        return None
    try:
        if _DAY.match(text):
            day = date.fromisoformat(text)
            return calendar.start_of(day + timedelta(days=1) if end else day).astimezone(UTC)
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise unprocessable(("query", name), "a time needs its offset, e.g. +08:00 or Z")
        return at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise unprocessable(
            ("query", name), "a day (YYYY-MM-DD) or a time with its offset (RFC 3339)"
        ) from None


def _masked(text: str | None) -> str | None:
    """A filter as recorded: anything shaped like a resident ID, and phone numbers, masked."""
    return mask_identifiers(text) if text is not None else None


def build_audit_router(
    engine: AsyncEngine, auth: TokenAuth, audit: AuditTrail, calendar: Calendar
) -> APIRouter:
    """``/v1/audit``: operate tokens only; records of units outside the token's scope are
    never shown."""
    router = APIRouter(
        prefix="/v1",
        tags=["audit"],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "Not an operate token, or the unit is outside its scope"},
            422: {"description": "A parameter is malformed (named in the answer)"},
        },
    )
    operate = auth.require(Role.OPERATE)

    @router.get(
        "/audit",
        summary="The audit trail: who submitted or did what, when, for which unit (newest first)",
    )
    async def read(
        token: Annotated[Token, Depends(operate)],
        unit: Annotated[
            str | None, Query(pattern=r"^\d{4,12}$", description="A unit and below")
        ] = None,
        reporter: Annotated[
            str | None,
            Query(
                min_length=1, max_length=200, pattern=_NO_NUL, description="A token's id or name"
            ),
        ] = None,
        kind: Annotated[
            str | None,
            Query(
                alias="type",
                pattern=_NO_NUL,
                min_length=1,
                max_length=200,
                description="An event type (zhibao.screening.v1) or an action (task.issued)",
            ),
        ] = None,
        outcome: Annotated[Outcome | None, Query()] = None,
        first: Annotated[
            str | None, Query(alias="from", description="A day (district time) or an RFC 3339 time")
        ] = None,
        last: Annotated[
            str | None, Query(alias="to", description="A day (included) or an RFC 3339 time")
        ] = None,
        cursor: Annotated[
            str | None, Query(max_length=200, description="`next` of the previous page")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> dict[str, Any]:
        if unit is not None:
            auth.ensure_scope(token, unit)
        since = moment(first, "from", calendar, end=False)
        until = moment(last, "to", calendar, end=True)
        if since is not None and until is not None and until <= since:
            raise unprocessable(("query", "to"), "must lie after from")
        after = decode_cursor(cursor) if cursor is not None else None
        query = TrailQuery(token.scopes, unit, reporter, kind, outcome, since, until)
        async with engine.connect() as conn:
            records, following = await read_trail(conn, query, after, limit)
        filters = {
            "unit": unit,
            "reporter": _masked(reporter),
            "type": _masked(kind),
            "outcome": outcome,
            "from": first,
            "to": last,
            "cursor": cursor is not None,
            "limit": limit,
        }
        audit.record("audit.read", token, unit=unit or token.scopes[0], detail=filters)
        return {
            "records": records,
            "next": encode_cursor(following) if following is not None else None,
        }

    return router
