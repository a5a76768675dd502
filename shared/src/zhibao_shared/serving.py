"""Serving a service's ASGI app the same way everywhere (uvicorn, graceful drain, deadlines)."""

from __future__ import annotations

import sys
from contextlib import suppress

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from zhibao_shared.http_limits import BodyDeadline, http_protocol
from zhibao_shared.runtime import tune_gc
from zhibao_shared.settings import ServiceSettings


def server_config(app: FastAPI, settings: ServiceSettings, port: int) -> uvicorn.Config:
    """uvicorn's configuration for a service: its request head and body deadlines
    (``ZHIBAO_HTTP_HEADER_TIMEOUT_S``, ``…_BODY_TIMEOUT_S``, see
    :mod:`zhibao_shared.http_limits`), and how many new connections may stay silent
    before the oldest is closed (``ZHIBAO_HTTP_MAX_SILENT``), and which proxies' forwarded
    headers are believed (``ZHIBAO_FORWARDED_ALLOW_IPS``; none unless set)."""
    proxies = settings.forwarded_allow_ips
    return uvicorn.Config(
        BodyDeadline(app, settings.http_body_timeout_s),
        host=settings.host,
        port=port,
        log_level="warning",
        # The access lines are INFO, below that level: none is written, yet uvicorn
        # formatted each one's arguments (client address, quoted path) for every response.
        access_log=False,
        http=http_protocol(settings.http_header_timeout_s, settings.http_max_silent),
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        proxy_headers=proxies is not None,
        forwarded_allow_ips=proxies,
    )


def serve(app: FastAPI, settings: ServiceSettings, port: int) -> None:
    """Run until SIGTERM/Ctrl-C; in-flight requests get ``shutdown_grace_s`` to finish."""
    tune_gc()
    server = uvicorn.Server(server_config(app, settings, port))
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # as uvicorn.run: could not bind its port, or start-up failed
        sys.exit(STARTUP_FAILURE)
