"""Freezing a server process (SIGSTOP) for a test, until every thread of it has stopped."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _all_stopped(pid: int) -> bool:
    """True when every thread of ``pid`` is in the stopped state (``T``)."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            # the state follows the command name, which is in parentheses
            states.append(stat.read_text().rpartition(")")[2].split()[0])
        except (FileNotFoundError, IndexError):
            continue  # a thread that ended meanwhile
    return bool(states) and all(state in ("T", "t") for state in states)


@contextmanager
def frozen(pid: int, within_s: float = 10.0) -> Iterator[None]:
    """SIGSTOP ``pid`` and wait until all its threads have stopped (on a busy machine a
    thread still running may answer a request sent just after the signal); SIGCONT on
    leaving."""
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + within_s
        while not _all_stopped(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"process {pid} did not stop within {within_s} s")
            time.sleep(0.001)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
