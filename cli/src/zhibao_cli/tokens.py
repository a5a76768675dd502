"""``zhibao token``: create, list and revoke bearer tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from zhibao_shared.settings import ZhibaoSettings
from zhibao_shared.tokens import Role, TokenStore

app = typer.Typer(help="Manage bearer tokens (stored hashed in ZHIBAO_DATA_DIR/tokens.db).")


def _store() -> TokenStore:
    return TokenStore.in_data_dir(ZhibaoSettings().data_dir)


@app.command()
def create(
    scope: Annotated[list[str], typer.Option(help="Unit code or code prefix (repeatable)")],
    role: Annotated[Role, typer.Option(help="report, read or operate")] = Role.REPORT,
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. gate-3")] = "",
) -> None:
    """Create a token; the secret is printed once, as the last line."""
    store = _store()
    try:
        token, secret = store.create(scopes=scope, role=role, name=name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(
        f"created token {token.id} ({token.name}): role={token.role} "
        f"scopes={','.join(token.scopes)}",
        err=True,
    )
    typer.echo("store it now; it cannot be shown again:", err=True)
    typer.echo(secret)


@app.command("list")
def list_tokens() -> None:
    """List tokens (never their secrets)."""
    for token in _store().list():
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
        typer.echo(
            f"{token.id}  {token.role:<8} {','.join(token.scopes):<24} "
            f"{token.name:<20} {token.created_at:%Y-%m-%d %H:%M}  {state}"
        )


@app.command()
def revoke(token_id: Annotated[str, typer.Argument(help="The token id shown by list")]) -> None:
    """Revoke a token; running services refuse it from the next request on."""
    if not _store().revoke(token_id):
        typer.echo(f"no active token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")
