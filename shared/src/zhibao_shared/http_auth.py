"""Bearer-token authorisation for the services' HTTP APIs (FastAPI dependencies).

Usage in a service::

    auth = TokenAuth(TokenStore.configured(settings))

    @router.get("/v1/units/{code}/rollup")
    async def rollup(code: str, token: Annotated[Token, Depends(auth.require(Role.READ))]):
        auth.ensure_scope(token, code)   # 403 outside the token's units
        ...

A street's token (scope ``640106001``) may read that street and everything
below it, not its neighbours and not the district above.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency
# annotations of the closures below at runtime.

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query

from zhibao_shared.tokens import Role, Token, TokenStore, bearer_secret


class TokenAuth:
    """Authenticates requests against the token store and checks unit scope."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    def require(self, role: Role) -> Callable[..., Awaitable[Token]]:
        """A dependency returning the caller's token, or answering 401/403.

        The token comes from the ``Authorization: Bearer`` header only: a
        token in a URL ends up in access logs, proxies and browser history.

        ``async`` although it never awaits: FastAPI runs a plain ``def``
        dependency in a worker thread, a hop that cost reads more than the
        check itself (an in-memory lookup after one cheap pragma).
        """

        async def dependency(
            authorization: Annotated[str | None, Header()] = None,
        ) -> Token:
            return self._check(bearer_secret(authorization), role)

        return dependency

    def require_for_stream(self, role: Role) -> Callable[..., Awaitable[Token]]:
        """Like :meth:`require`, also accepting an ``access_token`` query parameter.

        Only for the live stream: a browser's EventSource cannot set headers.
        No other route may opt in.
        """

        async def dependency(
            authorization: Annotated[str | None, Header()] = None,
            access_token: Annotated[
                str | None, Query(description="For EventSource, which cannot set headers")
            ] = None,
        ) -> Token:
            return self._check(bearer_secret(authorization) or access_token, role)

        return dependency

    def still_active(self, token: Token) -> bool:
        """True while ``token`` is neither revoked nor expired (for long-lived streams)."""
        return self._store.still_active(token.id)

    def _check(self, secret: str | None, role: Role) -> Token:
        token = self._store.authenticate(secret) if secret else None
        if token is None:
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )
        if not token.role.permits(role):
            raise HTTPException(403, f"a {token.role} token may not {role.value}")
        return token

    def unit_scope(self, role: Role) -> Callable[..., Awaitable[Token]]:
        """A dependency for routes with a ``{code}`` path parameter: role and scope checked.

        Use it as a router-level dependency so every unit route is covered::

            APIRouter(prefix="/v1/units", dependencies=[Depends(auth.unit_scope(Role.READ))])
        """
        authenticated = self.require(role)

        async def dependency(code: str, token: Annotated[Token, Depends(authenticated)]) -> Token:
            self.ensure_scope(token, code)
            return token

        return dependency

    def permits(self, authorization: str | None, role: Role, code: str) -> bool:
        """True when a request with this ``Authorization`` header passes :meth:`unit_scope`
        for ``code`` (for routes answered outside FastAPI's dependencies)."""
        try:
            token = self._check(bearer_secret(authorization), role)
        except HTTPException:
            return False
        return token.covers(code)

    @staticmethod
    def ensure_scope(token: Token, code: str) -> None:
        """403 unless ``code`` lies within the token's units."""
        if not token.covers(code):
            raise HTTPException(403, f"this token may not see unit {code}")
