"""What the routes answered before FastAPI (the fast paths of intake's ``POST /v1/events``
and the aggregator's rollup read) share: reading request headers, sending answers."""

from __future__ import annotations

from starlette.types import Scope, Send

Headers = list[tuple[bytes, bytes]]


def first_headers(scope: Scope, *names: bytes) -> list[str | None]:
    """The first value of each header in ``names`` (lower-case), None where absent, as
    Starlette's ``Headers.get`` reads them."""
    found: list[str | None] = [None] * len(names)
    for name, value in scope["headers"]:
        if name in names:
            at = names.index(name)
            if found[at] is None:
                found[at] = value.decode("latin-1")
    return found


async def respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """The whole response: its start, then its body in one message."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def json_headers(body: bytes) -> Headers:
    """A JSON body's headers, as Starlette's ``Response`` sets them."""
    return [
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"content-type", b"application/json"),
    ]


async def server_error(send: Send) -> None:
    """A 500 as Starlette's ``ServerErrorMiddleware`` answers an unhandled exception
    (the caller re-raises it for the server to log)."""
    text = b"Internal Server Error"
    headers = [
        (b"content-length", str(len(text)).encode("latin-1")),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]
    await respond(send, 500, text, headers)
