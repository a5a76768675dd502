"""A function run in a helper process beside the caller's own work, its result awaited.

For CPU-bound work that one interpreter cannot spread over the machine's cores (a
rebuild replaying a stream: decoding and counting run under the interpreter's lock). The
helper is a fresh interpreter (``spawn``: nothing of the caller's state is copied), dies
with the process that started it, and hands back one picklable result or its failure.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar, cast

from zhibao_shared.natsserver import die_with_parent

A = TypeVar("A")
R = TypeVar("R")


class HelperFailed(RuntimeError):
    """The helper process raised, or exited without a result."""


class Helper(Generic[R]):
    """A started helper process: :meth:`result` awaits it, :meth:`stop` ends it."""

    def __init__(self, process: BaseProcess, results: Connection) -> None:
        self._process = process
        self._results = results

    async def result(self) -> R:
        """The target's return value; raises :class:`HelperFailed` if it raised or died."""
        try:
            outcome, value = await asyncio.to_thread(self._results.recv)
        except EOFError:
            await asyncio.to_thread(self._process.join)
            raise HelperFailed(
                f"the helper process exited ({self._process.exitcode}) without a result"
            ) from None
        await asyncio.to_thread(self._process.join)
        if outcome != "done":
            raise HelperFailed(f"the helper process failed: {value}")
        return cast(R, value)

    def stop(self) -> None:
        """End the process if it still runs (the caller's work failed or was cancelled).

        The pipe is left to the garbage collector: a cancelled :meth:`result` may still
        have a thread reading it, which the process's end wakes."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


async def all_or_first_failure(works: Sequence[Awaitable[R]]) -> list[R]:
    """The results of ``works`` run at once, in order; the first to raise cancels the
    others (awaited until they ended) and its exception is raised."""
    tasks = [asyncio.ensure_future(work) for work in works]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            failure = task.exception()
            if failure is not None:
                raise failure
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def start_helper(target: Callable[[A], R], argument: A) -> Helper[R]:
    """Start ``target(argument)`` in a new process (both must pickle)."""
    context = multiprocessing.get_context("spawn")
    results, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_run, args=(target, argument, sender, os.getpid()), daemon=True
    )
    process.start()
    sender.close()  # the helper holds the other copy: its exit ends our recv
    return Helper(process, results)


def _run(target: Callable[[Any], Any], argument: Any, results: Connection, parent: int) -> None:
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        return
    try:
        value = target(argument)
    except BaseException as exc:
        with suppress(OSError):  # the parent may be gone, or have stopped listening
            results.send(("failed", repr(exc)))
        raise
    results.send(("done", value))
