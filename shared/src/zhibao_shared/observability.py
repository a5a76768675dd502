"""Structured logging and the probe endpoints every service exposes.

``/healthz`` says the process is alive; ``/readyz`` says it can do its job
(its dependencies answer); ``/metrics`` is Prometheus text format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from zhibao_shared.resident_id import mask_resident_ids
from zhibao_shared.settings import ZhibaoSettings


# Defence in depth: anything shaped like a resident ID is masked before a log
# line is written, even if a future change logs a payload by mistake.
def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return mask_resident_ids(value)
    return value


def redact_identifiers(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor masking resident-ID-shaped strings in every field."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact(value)
    return event_dict


def configure_logging(settings: ZhibaoSettings, *, service: str) -> None:
    """JSON (or console) structured logs on stderr, tagged with the service name."""
    as_json = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer()
    )
    level = logging.getLevelName(settings.log_level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_service(service),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_identifiers,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(message)s")


def _add_service(service: str) -> structlog.types.Processor:
    def add(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return add


Readiness = Callable[[], Awaitable[dict[str, bool]]]


def probes_router(readiness: Readiness, registry: CollectorRegistry = REGISTRY) -> APIRouter:
    """``/healthz``, ``/readyz`` and ``/metrics`` for a FastAPI app.

    ``readiness`` returns a check name → ok mapping; the service is ready when
    every check is ok, and ``/readyz`` answers 503 naming the failing ones.
    """
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: dependencies answer",
        responses={503: {"description": "Not ready; failing checks are listed"}},
    )
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
