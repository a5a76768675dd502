"""``zhibao audit``: read the audit trail (the aggregator's ``GET /v1/audit``).

Pages are followed until the last (or ``--max`` records): a table by default,
one JSON object a line with ``--json``. Each page read is itself recorded in the
trail as an ``audit.read`` action of the token used.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8102"
REQUEST_TIMEOUT_S = 60.0
PAGE = 200
_COLUMNS = (("AT (UTC)", 19), ("UNIT", 12), ("WHO", 20), ("WHAT", 24), ("OUTCOME", 10))


class Refused(Exception):
    """The aggregator refused the request or could not be reached."""


def pages(
    client: httpx.Client, params: dict[str, str | int], most: int | None
) -> Iterator[dict[str, Any]]:
    """The records of every page, newest first, up to ``most``."""
    shown = 0
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        try:
            answer = client.get("/v1/audit", params=query)
        except httpx.HTTPError as exc:
            raise Refused(f"the aggregator is unreachable: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise Refused(f"the aggregator answered {answer.status_code}: {_detail(answer)}")
        body = answer.json()
        for record in body["records"]:
            if most is not None and shown >= most:
                return
            shown += 1
            yield record
        cursor = body.get("next")
        if not cursor:
            return


def _detail(answer: httpx.Response) -> str:
    try:
        return json.dumps(answer.json().get("detail"), ensure_ascii=False)
    except ValueError:
        return answer.text[:200]


def row(record: dict[str, Any]) -> str:
    """One record as a table line: when, unit, who, what, outcome, then the rest."""
    who = record.get("person") or record.get("token_name") or record.get("token") or "-"
    cells = (
        (record.get("at") or "")[:19],
        record.get("unit") or "-",
        who,
        record.get("type") or record.get("kind") or "-",
        record.get("outcome") or "-",
    )
    line = "  ".join(
        f"{_shown(str(c))[:w]:<{w}}" for c, (_, w) in zip(cells, _COLUMNS, strict=True)
    )
    return f"{line}  {_shown(_rest(record))}".rstrip()


def _shown(text: str) -> str:
    """``text`` with control, format and line-separator characters escaped (``\\n``,
    ``\\x1b``, ``\\u202e``): a refused event's id is recorded as it was sent, and a
    newline or a terminal escape in it must not forge a line or hide one. Spaces of any
    width stay as they are."""
    if text.isprintable():
        return text
    return "".join(_escaped(ch) if unicodedata.category(ch) in _HIDDEN else ch for ch in text)


#: Control, format (bidirectional overrides among them), line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _escaped(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii") if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def _rest(record: dict[str, Any]) -> str:
    """The identity of what was acted on and why it failed, if it did."""
    parts: list[str] = []
    if record.get("event_id"):
        parts.append(f"event {record.get('event_source')} {record['event_id']}")
        if record.get("event_time"):
            parts.append(f"time {record['event_time']}")
    if record.get("target"):
        parts.append(f"target {record['target']}")
    detail = record.get("detail")
    if record.get("kind") == "tally" and isinstance(detail, dict):
        # one row counts a window's refusals: the count is the figure an auditor needs
        parts.append(f"{detail.get('count')} refused from {detail.get('remote') or '-'}")
        parts.append(f"since {detail.get('from')}")
    if record.get("code"):
        parts.append(f"code {record['code']}")
    return "; ".join(parts)


def header() -> str:
    """The table's header line."""
    return "  ".join(f"{title:<{w}}" for title, w in _COLUMNS) + "  DETAIL"


def audit(
    url: Annotated[
        str, typer.Option(envvar="ZHIBAO_AGGREGATOR_URL", help="The aggregator's address")
    ] = DEFAULT_URL,
    token: Annotated[
        str, typer.Option(envvar="ZHIBAO_TOKEN", help="An operate token (its units are shown)")
    ] = "",
    unit: Annotated[str | None, typer.Option(help="A unit's code: it and below")] = None,
    reporter: Annotated[str | None, typer.Option(help="A token's id or name")] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--type", help="An event type (zhibao.case.v1) or action (alert.acknowledged)"
        ),
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(help="accepted, duplicate, rejected, unavailable, refused or done"),
    ] = None,
    first: Annotated[
        str | None, typer.Option("--from", help="A day (YYYY-MM-DD) or an RFC 3339 time")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="A day (included) or an RFC 3339 time")
    ] = None,
    most: Annotated[int | None, typer.Option("--max", min=1, help="At most this many")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Print the audit trail (newest first): who submitted or did what, when, for which unit."""
    if not token:
        raise typer.BadParameter("an operate token is required (--token or ZHIBAO_TOKEN)")
    filters = {"unit": unit, "reporter": reporter, "type": kind, "outcome": outcome}
    filters |= {"from": first, "to": last}
    params: dict[str, str | int] = {k: v for k, v in filters.items() if v is not None}
    params["limit"] = min(PAGE, most) if most else PAGE
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=REQUEST_TIMEOUT_S) as c:
        if not as_json:
            typer.echo(header())
        try:
            for record in pages(c, params, most):
                typer.echo(json.dumps(record, ensure_ascii=False) if as_json else row(record))
        except Refused as refused:
            typer.echo(str(refused), err=True)
            raise typer.Exit(1) from None
