"""Serving a service's ASGI app the same way everywhere (uvicorn, graceful drain)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from zhibao_shared.runtime import tune_gc
from zhibao_shared.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings, port: int) -> None:
    """Run until SIGTERM/Ctrl-C; in-flight requests get ``shutdown_grace_s`` to finish."""
    tune_gc()
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
