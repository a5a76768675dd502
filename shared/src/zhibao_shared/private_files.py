"""Files that hold secrets (passwords, tokens): readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path

_OWNER_ONLY_FILE = 0o600
_OWNER_ONLY_DIR = 0o700


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (created if missing)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, _OWNER_ONLY_DIR)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read.

    The file is created with those permissions, so its content is never readable by
    others, not even for a moment. Its folder is left as it is (see :func:`private_dir`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _OWNER_ONLY_FILE)
    os.fchmod(fd, _OWNER_ONLY_FILE)  # also when the file was left with wider permissions
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
