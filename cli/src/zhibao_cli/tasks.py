"""``zhibao tasks import``: issue the tasks of a command centre's list (xlsx or CSV).

Every row is checked first; any bad row means nothing is issued. The valid
tasks go to the response service's ``POST /v1/tasks`` in one request, which
the service issues all or none. A list longer than ``--chunk-size`` (the
service's ``ZHIBAO_RESPONSE_MAX_TASKS``, 10,000 by default) goes in several
requests, each all-or-nothing: should one be refused after others were
issued (the service restarted with another registry, the token was revoked),
the command says which rows were issued and which were not.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from zhibao_cli.task_sheet import SheetOptions, SheetTask, TaskSheet, read_task_sheet
from zhibao_client.importer import ImportRefused
from zhibao_shared.hierarchy import load_registry

DEFAULT_URL = "http://127.0.0.1:8104"
DEFAULT_CHUNK = 10_000
REQUEST_TIMEOUT_S = 300.0
_PATH_FIELDS = (
    ("person", "id_number"),
    ("contact.name", "name"),
    ("contact.phone", "phone"),
    ("contact.address", "address"),
)

app = typer.Typer(help="Tasks for communities (the response service).", no_args_is_help=True)


class Refused(Exception):
    """The service refused a request; the message says why (rows and columns when it can)."""


@dataclass
class Issued:
    """The tasks issued so far: (sheet row, task id) in order."""

    pairs: list[tuple[int, str]]


@app.command("import")
def import_tasks(
    sheet: Annotated[Path, typer.Argument(help="A task list: .xlsx or .csv", exists=True)],
    url: Annotated[
        str, typer.Option(envvar="ZHIBAO_RESPONSE_URL", help="The response service's address")
    ] = DEFAULT_URL,
    token: Annotated[
        str, typer.Option(envvar="ZHIBAO_TOKEN", help="An operate token covering the units")
    ] = "",
    kind: Annotated[
        str | None, typer.Option(help="Task kind for rows without 任务类型, e.g. verify_companion")
    ] = None,
    community: Annotated[
        str | None, typer.Option(help="Community (code or name) for rows without 所属社区")
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option(envvar="ZHIBAO_REGISTRY_PATH", help="Registry YAML (the sample if unset)"),
    ] = None,
    timezone: Annotated[
        str, typer.Option(envvar="ZHIBAO_TIMEZONE", help="Time zone of times without one")
    ] = "Asia/Shanghai",
    chunk_size: Annotated[
        int, typer.Option(min=1, help="Most tasks per request (the service's maximum)")
    ] = DEFAULT_CHUNK,
    ids: Annotated[
        Path | None, typer.Option(help="Write each issued task's row and id here (CSV)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Check the sheet only, issue nothing")] = False,
) -> None:
    """Issue the tasks of a list with Chinese headers; any bad row means nothing is issued."""
    options = SheetOptions(
        registry=load_registry(registry),
        now=datetime.now(UTC),
        timezone=timezone,
        kind=kind,
        community=community,
    )
    try:
        parsed = read_task_sheet(sheet, options)
    except ImportRefused as refused:
        for error in refused.errors:
            typer.echo(str(error), err=True)
        typer.echo(f"{len(refused.errors)} problem(s) in the sheet; no task was issued", err=True)
        raise typer.Exit(1) from None
    if parsed.ignored_columns:
        typer.echo(f"columns not read: {', '.join(parsed.ignored_columns)}", err=True)
    typer.echo(f"{len(parsed.tasks)} rows valid")
    if dry_run:
        return
    if not token:
        raise typer.BadParameter("a token is required (--token or ZHIBAO_TOKEN)")
    issued = Issued([])
    try:
        _issue_all(parsed, url.rstrip("/"), token, chunk_size, issued)
    except Refused as refused:
        typer.echo(str(refused), err=True)
        _report_partial(parsed, issued)
        raise typer.Exit(2 if issued.pairs else 1) from None
    finally:
        if ids is not None and issued.pairs:
            _write_ids(ids, issued)
    typer.echo(f"issued {len(issued.pairs)} tasks")


def _issue_all(parsed: TaskSheet, url: str, token: str, chunk_size: int, issued: Issued) -> None:
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        for start in range(0, len(parsed.tasks), chunk_size):
            chunk = parsed.tasks[start : start + chunk_size]
            task_ids = _post(client, chunk, parsed)
            issued.pairs += [(t.row, i) for t, i in zip(chunk, task_ids, strict=True)]


def _post(client: httpx.Client, chunk: list[SheetTask], parsed: TaskSheet) -> list[str]:
    bodies = [t.body for t in chunk]
    try:
        answer = client.post(
            "/v1/tasks", json=bodies, headers={"Idempotency-Key": _chunk_key(bodies)}
        )
    except httpx.HTTPError as exc:
        raise Refused(f"the response service is unreachable: {type(exc).__name__}") from None
    if answer.status_code == 201:
        task_ids: list[str] = answer.json()["ids"]
        return task_ids
    detail = _detail(answer)
    if answer.status_code == 422 and isinstance(detail, dict):
        lines = [_problem_line(p, chunk, parsed) for p in detail.get("problems", [])]
        raise Refused("\n".join([*lines, "the service refused the tasks"]))
    if answer.status_code == 413:
        raise Refused(f"{detail}; send fewer per request with --chunk-size")
    raise Refused(f"the response service answered {answer.status_code}: {detail}")


def _chunk_key(bodies: list[dict[str, Any]]) -> str:
    """The chunk's Idempotency-Key, from its tasks as sent: running the same list again
    (after a failure part way, say) finds the chunks already issued, never a second set."""
    canonical = json.dumps(bodies, sort_keys=True, ensure_ascii=False)
    return "sheet-" + hashlib.sha256(canonical.encode()).hexdigest()


def _detail(answer: httpx.Response) -> Any:
    try:
        return answer.json().get("detail", answer.text)
    except ValueError:
        return answer.text[:200]


def _problem_line(problem: dict[str, Any], chunk: list[SheetTask], parsed: TaskSheet) -> str:
    index = problem.get("index", -1)
    path = str(problem.get("field", ""))
    name = next((f for prefix, f in _PATH_FIELDS if path.startswith(prefix)), path)
    where = f"row {chunk[index].row}" if 0 <= index < len(chunk) else "the request"
    return f"{where}, column {parsed.column(name)}: {problem.get('message', '')}"


def _report_partial(parsed: TaskSheet, issued: Issued) -> None:
    if not issued.pairs:
        typer.echo("no task was issued", err=True)
        return
    last = issued.pairs[-1][0]
    typer.echo(
        f"{len(issued.pairs)} tasks were issued (rows up to {last}); the rows after "
        f"row {last} ({len(parsed.tasks) - len(issued.pairs)} tasks) were NOT issued",
        err=True,
    )


def _write_ids(path: Path, issued: Issued) -> None:
    with path.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["row", "task"])
        writer.writerows(issued.pairs)
