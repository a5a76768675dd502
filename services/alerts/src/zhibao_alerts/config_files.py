"""Hot-reloaded YAML configuration: a bad file is refused and the previous one stays."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
import yaml
from pydantic import BaseModel, ValidationError

from zhibao_alerts import metrics
from zhibao_alerts.domain.redaction import mask_text

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """The file cannot be used; the message says why (and where)."""


#: A check beyond the file's own schema (agreement with settings): the problem, or None.
Check = Callable[[M], str | None]


def parse(model: type[M], text: str, origin: str, check: Check[M] | None = None) -> M:
    """Validate a YAML document, with a clear message when it is wrong."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        # the parser quotes the offending lines: robot URLs and addresses are masked
        raise ConfigError(f"{origin}: not valid YAML: {mask_text(str(exc))}") from None
    try:
        parsed = model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(dict.fromkeys(_problem(e) for e in exc.errors()))
        raise ConfigError(f"{origin}: {problems}") from None
    problem = check(parsed) if check is not None else None
    if problem is not None:
        raise ConfigError(f"{origin}: {problem}")
    return parsed


def _problem(error: Any) -> str:
    """One validation error as ``where: what (got 'value')``; the value is named when it
    is a short scalar (an unknown key or value), with URLs and addresses masked."""
    where = ".".join(str(part) for part in error["loc"] if not _variant(part))
    value = error.get("input")
    got = ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        shown = mask_text(str(value)) or ""
        if len(shown) <= 80 and "secret" not in where and "password" not in where:
            got = f" (got {shown!r})"
    return f"{where}: {error['msg']}{got}"


def _variant(part: object) -> bool:
    """Pydantic's names for union members and dict keys in an error location."""
    text = str(part)
    return text == "[key]" or ("[" in text and text.endswith("]"))


class Watched(Generic[M]):
    """A configuration file reloaded when it changes; ``current`` is always usable."""

    def __init__(
        self, model: type[M], path: Path | None, sample: str, check: Check[M] | None = None
    ) -> None:
        self._model = model
        self._check = check
        self._path = path
        self._mtime = path.stat().st_mtime if path else 0.0
        text = (
            path.read_text("utf-8")
            if path
            else (resources.files("zhibao_alerts.data").joinpath(sample).read_text("utf-8"))
        )
        self.current: M = parse(model, text, str(path or sample), check)
        self.last_error: str | None = None
        self._name = Path(str(path or sample)).name
        metrics.CONFIG_REFUSED.labels(self._name).set(0)

    def reload_if_changed(self) -> bool:
        """Reload after a change; True when new configuration took effect."""
        if self._path is None:
            return False
        try:
            mtime = self._path.stat().st_mtime
        except OSError as exc:
            self.last_error = f"{self._path}: {exc}"
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            text = self._path.read_text("utf-8")
            self.current = parse(self._model, text, str(self._path), self._check)
        except ConfigError as exc:
            self.last_error = str(exc)
            metrics.CONFIG_REFUSED.labels(self._name).set(1)
            log.error("config_refused_keeping_previous", error=str(exc))
            return False
        self.last_error = None
        metrics.CONFIG_REFUSED.labels(self._name).set(0)
        log.info("config_reloaded", path=str(self._path))
        return True
