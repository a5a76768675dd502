"""Capturing what one module logs, whatever the process's structlog configuration."""

from __future__ import annotations

from collections.abc import MutableMapping
from types import ModuleType
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture


def captured_logs(
    module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> list[MutableMapping[str, Any]]:
    """The entries ``module.log`` writes from now on (until the test ends).

    ``structlog.testing.capture_logs`` misses loggers that a service's
    ``configure_logging`` (``cache_logger_on_first_use``) cached in an earlier test of
    the same process, so the module gets a logger of its own that only captures.
    """
    capture = LogCapture()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(), processors=[capture], wrapper_class=structlog.BoundLogger
    )
    monkeypatch.setattr(module, "log", logger)
    return capture.entries
