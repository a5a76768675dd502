"""Structured logging and the probe endpoints every service exposes.

``/healthz`` says the process is alive; ``/readyz`` says it can do its job
(its dependencies answer); ``/metrics`` is Prometheus text format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from zhibao_shared.resident_id import mask_identifiers
from zhibao_shared.settings import ZhibaoSettings


# Defence in depth: anything shaped like a resident ID, and any phone number, is masked
# before a log line is written, even if a future change logs a payload by mistake.
def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return mask_identifiers(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


class MaskResidentIds(logging.Filter):
    """Masks resident-ID-shaped text and phone numbers in standard-library log records
    (uvicorn's own lines and tracebacks, libraries' warnings), as ``redact_identifiers``
    does for structlog: the message, its arguments and the formatted exception."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place, keeping the shape of its arguments; never drops it."""
        if isinstance(record.msg, str):
            record.msg = mask_identifiers(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked_argument(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _masked_argument(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_identifiers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_identifiers(record.stack_info)
        return True


def _masked_argument(value: object) -> object:
    """A log argument with resident IDs and phone numbers masked; numbers stay numbers
    (``%d`` still works)."""
    if value is None or isinstance(value, int | float):
        return value
    return mask_identifiers(value if isinstance(value, str) else str(value))


_MASK = MaskResidentIds()
#: Loggers that write through handlers of their own (uvicorn configures them when it starts).
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _mask_standard_logging() -> None:
    """Attach the mask to the root handlers (every propagating library logger) and to
    uvicorn's loggers (logger filters survive uvicorn's later ``dictConfig``)."""
    for handler in logging.getLogger().handlers:
        if _MASK not in handler.filters:
            handler.addFilter(_MASK)
    for name in _OWN_HANDLERS:
        logger = logging.getLogger(name)
        if _MASK not in logger.filters:
            logger.addFilter(_MASK)


def redact_identifiers(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor masking resident-ID-shaped strings and phone numbers in every
    field."""
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
    _mask_standard_logging()


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
