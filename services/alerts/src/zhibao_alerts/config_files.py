"""Hot-reloaded YAML configuration: a bad file is refused and the previous one stays."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Generic, TypeVar

import structlog
import yaml
from pydantic import BaseModel, ValidationError

from zhibao_alerts.domain.redaction import mask_text

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """The file cannot be used; the message says why (and where)."""


def parse(model: type[M], text: str, origin: str) -> M:
    """Validate a YAML document, with a clear message when it is wrong."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        # the parser quotes the offending lines: robot URLs and addresses are masked
        raise ConfigError(f"{origin}: not valid YAML: {mask_text(str(exc))}") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{origin}: {problems}") from None


class Watched(Generic[M]):
    """A configuration file reloaded when it changes; ``current`` is always usable."""

    def __init__(self, model: type[M], path: Path | None, sample: str) -> None:
        self._model = model
        self._path = path
        self._mtime = path.stat().st_mtime if path else 0.0
        text = (
            path.read_text("utf-8")
            if path
            else (resources.files("zhibao_alerts.data").joinpath(sample).read_text("utf-8"))
        )
        self.current: M = parse(model, text, str(path or sample))
        self.last_error: str | None = None

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
            self.current = parse(self._model, self._path.read_text("utf-8"), str(self._path))
        except ConfigError as exc:
            self.last_error = str(exc)
            log.error("config_refused_keeping_previous", error=str(exc))
            return False
        self.last_error = None
        log.info("config_reloaded", path=str(self._path))
        return True
