"""``zhibao token``: create, list and revoke bearer tokens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from zhibao_shared.hierarchy import load_registry
from zhibao_shared.settings import ZhibaoSettings
from zhibao_shared.tokens import Role, Token, TokenStore

app = typer.Typer(
    help="Manage bearer tokens (stored hashed: ZHIBAO_TOKENS_DATABASE_URL, "
    "else ZHIBAO_DATA_DIR/tokens.db)."
)

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str, now: datetime) -> datetime:
    """``--expires``: a duration from ``now`` (``90m``, ``12h``, ``30d``, ``2w``) or an
    RFC 3339 time with its offset (``2027-01-31T18:00:00+08:00``); it must lie ahead."""
    match = _DURATION.match(text.strip())
    if match:
        at = now + timedelta(**{_UNIT[match[2]]: int(match[1])})
    else:
        try:
            at = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(
                f"--expires {text!r} is neither a duration (90m, 12h, 30d, 2w) "
                "nor an RFC 3339 time (2027-01-31T18:00:00+08:00)"
            ) from None
        if at.tzinfo is None:
            raise ValueError(f"--expires {text!r} needs an offset, e.g. +08:00 or Z")
    if at <= now:
        raise ValueError(f"--expires {text!r} is not in the future")
    return at.astimezone(UTC)


def unknown_scopes(scopes: list[str], settings: ZhibaoSettings) -> list[str]:
    """The scopes that name no unit of the registry (``ZHIBAO_REGISTRY_PATH``)."""
    registry = load_registry(settings.registry_path)
    return [scope for scope in scopes if scope.strip() and scope.strip() not in registry]


@app.command()
def create(
    scope: Annotated[list[str], typer.Option(help="Code of a unit in the registry (repeatable)")],
    role: Annotated[Role, typer.Option(help="report, read or operate")] = Role.REPORT,
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. gate-3")] = "",
    expires: Annotated[
        str | None,
        typer.Option(help="Expiry: a duration (90m, 12h, 30d, 2w) or an RFC 3339 time"),
    ] = None,
    person: Annotated[
        str | None,
        typer.Option(
            help="The person who uses it, name and role (e.g. '王芳 (社区书记)'): a personal "
            "token, whose acknowledgements, resolutions and silences are recorded as theirs"
        ),
    ] = None,
) -> None:
    """Create a token; the secret is printed once, as the last line."""
    settings = ZhibaoSettings()
    unknown = unknown_scopes(scope, settings)
    if unknown:
        raise typer.BadParameter(
            f"no unit {', '.join(unknown)} in the registry; a scope is the code of a "
            "community, street, district, city or province (see ZHIBAO_REGISTRY_PATH)",
            param_hint="--scope",
        )
    try:
        expires_at = parse_expiry(expires, datetime.now(UTC)) if expires else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expires") from None
    store = TokenStore.configured(settings)
    try:
        token, secret = store.create(
            scopes=scope, role=role, name=name, expires_at=expires_at, person=person
        )
    except ValueError as exc:
        hint = next((f"--{o}" for o in ("person", "name") if f"token's {o}" in str(exc)), None)
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    finally:
        store.close()
    typer.echo(
        f"created token {token.id} ({token.name}): role={token.role} "
        f"scopes={','.join(token.scopes)} expires={_expiry(token)} person={_person(token)}",
        err=True,
    )
    typer.echo("store it now; it cannot be shown again:", err=True)
    typer.echo(secret)


def _person(token: Token) -> str:
    return token.person or "-"


def _expiry(token: Token) -> str:
    return f"{token.expires_at:%Y-%m-%d %H:%M}Z" if token.expires_at else "never"


def _state(token: Token, now: datetime) -> str:
    if token.revoked_at:
        return f"revoked {token.revoked_at:%Y-%m-%d %H:%M}Z"
    return "expired" if token.expired(now) else "active"


@app.command("list")
def list_tokens() -> None:
    """List tokens (never their secrets), with expiry, state and person (``-``: a shared
    token); times in UTC."""
    store = TokenStore.configured(ZhibaoSettings())
    try:
        tokens = store.list()
    finally:
        store.close()
    now = datetime.now(UTC)
    typer.echo(
        f"{'ID':<8}  {'ROLE':<8} {'SCOPES':<24} {'NAME':<20} {'CREATED':<17} {'EXPIRES':<17} "
        f"{'STATE':<22} PERSON"
    )
    for token in tokens:
        typer.echo(
            f"{token.id:<8}  {token.role:<8} {','.join(token.scopes):<24} "
            f"{token.name:<20} {token.created_at:%Y-%m-%d %H:%M}Z {_expiry(token):<17} "
            f"{_state(token, now):<22} {_person(token)}"
        )


@app.command()
def revoke(token_id: Annotated[str, typer.Argument(help="The token id shown by list")]) -> None:
    """Revoke a token; services refuse it from the next request on (a shared store: within
    ZHIBAO_TOKENS_CACHE_TTL_S), and its open live streams end."""
    store = TokenStore.configured(ZhibaoSettings())
    try:
        revoked = store.revoke(token_id)
    finally:
        store.close()
    if not revoked:
        typer.echo(f"no active token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")
