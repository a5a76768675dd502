"""``POST /v1/events`` answered at the ASGI layer, before FastAPI's per-request machinery.

The benchmark's profile showed about two thirds of intake's CPU in the
framework's request path (middleware stack, routing, dependency resolution,
Request/Response objects) for a handler that needs none of it. The intake
app is a FastAPI subclass whose ``__call__`` answers exactly this route and
method itself, through the same :class:`Gateway` calls and with the same
answers as the FastAPI route (which stays registered: it documents the
endpoint in OpenAPI and serves any request the fast path does not take).
Everything else goes to FastAPI unchanged.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from zhibao_intake.audit import Caller
from zhibao_intake.gateway import Answer, Gateway
from zhibao_shared.asgi_answers import first_headers, respond, server_error

PATH = "/v1/events"
#: ``JSONResponse``'s encoding, built once (``json.dumps`` with options builds one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def _render(answer: Answer) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Body and headers exactly as ``JSONResponse(answer.body, answer.status, headers)``."""
    body = _ENCODER.encode(answer.body).encode("utf-8")
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
    ]
    if answer.retry_after is not None:
        headers.append((b"retry-after", str(answer.retry_after).encode("latin-1")))
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    headers.append((b"content-type", b"application/json"))
    return body, headers


async def _read_limited(receive: Receive, declared: int | None, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes (never buffered whole)."""
    if declared is not None and declared > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class IntakeApp(FastAPI):
    """FastAPI, with ``POST /v1/events`` taken before the middleware stack when enabled."""

    fast_gateway: Gateway | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.fast_gateway
        if (
            gateway is None
            or scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await super().__call__(scope, receive, send)
            return
        await self._post_events(gateway, scope, receive, send)

    async def _post_events(
        self, gateway: Gateway, scope: Scope, receive: Receive, send: Send
    ) -> None:
        authorization, content_type, length = first_headers(
            scope, b"authorization", b"content-type", b"content-length"
        )
        declared = int(length) if length is not None and length.isdigit() else None
        client = scope.get("client")
        caller = Caller("http", client[0] if client else None, None)
        started = False
        try:
            token = await gateway.authenticate(authorization, caller)
            if isinstance(token, Answer):
                answer = token
            else:
                caller = Caller(caller.channel, caller.remote, token)
                body = await _read_limited(receive, declared, gateway.limits.max_body_bytes)
                if body is None:
                    answer = await gateway.too_large(caller)
                else:
                    answer = await gateway.submit(caller, body, content_type)
            payload, headers = _render(answer)
            started = True
            await respond(send, answer.status, payload, headers)
        except ConnectionResetError:
            return
        except Exception:
            if not started:
                await server_error(send)
            raise
