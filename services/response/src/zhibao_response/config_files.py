"""The playbook file, hot-reloaded: a bad file is refused and the previous one stays."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import structlog
import yaml
from pydantic import ValidationError

from zhibao_response.domain.playbook import Playbook

log = structlog.get_logger(__name__)
SAMPLE = "playbook.yaml"


class PlaybookError(ValueError):
    """The file cannot be used; the message says why (and where)."""


def parse_playbook(text: str, origin: str) -> Playbook:
    """Validate a playbook document, with a clear message when it is wrong."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{origin}: not valid YAML: {exc}") from None
    try:
        return Playbook.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        raise PlaybookError(f"{origin}: {problems}") from None


class WatchedPlaybook:
    """The playbook file, reloaded when it changes; ``current`` is always usable."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._mtime = path.stat().st_mtime if path else 0.0
        text = (
            path.read_text("utf-8")
            if path
            else resources.files("zhibao_response.data").joinpath(SAMPLE).read_text("utf-8")
        )
        self.current = parse_playbook(text, str(path or SAMPLE))
        self.last_error: str | None = None

    def reload_if_changed(self) -> bool:
        """Reload after a change; True when a new playbook took effect."""
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
            self.current = parse_playbook(self._path.read_text("utf-8"), str(self._path))
        except PlaybookError as exc:
            self.last_error = str(exc)
            log.error("playbook_refused_keeping_previous", error=str(exc))
            return False
        self.last_error = None
        log.info("playbook_reloaded", path=str(self._path))
        return True
