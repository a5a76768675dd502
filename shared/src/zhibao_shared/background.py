"""Stopping a service's background tasks, so that a stop always ends.

Every service runs loops as asyncio tasks (consumers' helpers, publishers, the
audit trail) and cancels them when it stops. ``task.cancel(); await task`` is
not enough on Python 3.11: ``asyncio.wait_for`` swallows a cancellation that
arrives in the same turn of the event loop as the future it waits for completes
(CPython gh-86296, fixed in 3.12), and the loop around it then runs on. nats-py
waits for every request's reply that way, and so do our own loops, so now and
then a stopping service would hang on ``await task`` until it was killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

#: How long a stop waits for its tasks before it leaves them behind.
CANCEL_BOUND_S = 5.0
#: How long a cancelled task may take (its ``finally`` may still flush) before it is
#: cancelled again: only one that swallowed the cancellation runs that long.
RECANCEL_AFTER_S = 1.0


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any] | None], within_s: float | None = None
) -> None:
    """Cancel ``tasks`` (None entries are skipped) and wait until they have finished.

    A task still running ``RECANCEL_AFTER_S`` after a cancellation is cancelled
    again (logged: it dropped the cancellation, or its cleanup is slow); one still
    running after ``within_s`` (``CANCEL_BOUND_S``) is logged and left behind, so the
    caller's shutdown goes on. Exceptions the tasks ended with are logged, not raised.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (CANCEL_BOUND_S if within_s is None else within_s)
    given = [task for task in tasks if task is not None]
    running = set(given) - {asyncio.current_task()}
    for task in running:
        task.cancel()
    try:
        while running:
            left_s = deadline - loop.time()
            if left_s <= 0:
                log.error("tasks_did_not_stop", tasks=_names(running))
                return
            _, running = await asyncio.wait(running, timeout=min(RECANCEL_AFTER_S, left_s))
            if running:
                log.warning("tasks_cancelled_again", tasks=_names(running))
                for task in running:
                    task.cancel()
    finally:
        for task in running:
            task.add_done_callback(_log_failure)
        for task in given:
            if task.done():
                _log_failure(task)


def _names(tasks: Iterable[asyncio.Task[Any]]) -> list[str]:
    """What each task runs (tasks are not named where they are created)."""
    return sorted(_name(task) for task in tasks)


def _name(task: asyncio.Task[Any]) -> str:
    return str(getattr(task.get_coro(), "__qualname__", task.get_name()))


def _log_failure(task: asyncio.Task[Any]) -> None:
    """Log the exception a finished task ended with (which also marks it retrieved)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("task_failed", task=_name(task), error=repr(error))


async def drain(tasks: Iterable[asyncio.Task[Any] | None], within_s: float) -> None:
    """Let tasks that were asked to stop finish, for at most ``within_s``; then cancel.

    For loops that end on their own once stopped (a consumer asked to ``stop()``
    handles and acknowledges the batch in hand, then returns): cancelling them at
    once would drop that batch mid-transaction, or commit it in its worker thread
    without the acknowledgement, and its events would wait ``ack_wait`` for redelivery.
    """
    running = [task for task in tasks if task is not None]
    if running:
        await asyncio.wait(running, timeout=within_s)
    await cancel_and_wait(running)
