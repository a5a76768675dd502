"""A stopping service's background tasks end, even one that swallowed its cancellation."""

from __future__ import annotations

import asyncio
from contextlib import suppress

from zhibao_shared.background import cancel_and_wait


async def _waits_for_replies(replies: asyncio.Queue[asyncio.Future[None]]) -> None:
    """A loop of the kind nats-py's requests make: wait_for on a reply, again and again."""
    loop = asyncio.get_running_loop()
    while True:
        reply: asyncio.Future[None] = loop.create_future()
        replies.put_nowait(reply)
        with suppress(TimeoutError):
            await asyncio.wait_for(reply, 10)


async def _started_waiting(
    replies: asyncio.Queue[asyncio.Future[None]],
) -> tuple[asyncio.Task[None], asyncio.Future[None]]:
    task = asyncio.create_task(_waits_for_replies(replies))
    reply = await replies.get()
    await asyncio.sleep(0)  # the task is inside wait_for now
    return task, reply


async def test_a_loop_whose_cancellation_met_a_reply_is_stopped() -> None:
    replies: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()
    task, reply = await _started_waiting(replies)
    # The reply and the stop in the same turn: Python 3.11's wait_for returns the reply
    # and drops the cancellation, so a single cancel() leaves the loop running.
    reply.set_result(None)
    stopping = asyncio.create_task(cancel_and_wait([task]))
    try:
        done, _ = await asyncio.wait([stopping], timeout=10)
        assert stopping in done, "the stop hangs on a loop that dropped its cancellation"
        assert task.cancelled()
    finally:
        stopping.cancel()
        task.cancel()


async def test_a_finally_that_flushes_is_not_interrupted() -> None:
    flushed: list[str] = []

    async def flushes_on_the_way_out() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.3)  # publishing what it held
            flushed.append("records")

    task = asyncio.create_task(flushes_on_the_way_out())
    await asyncio.sleep(0)
    await cancel_and_wait([task, None])
    assert flushed == ["records"]


async def test_a_task_that_will_not_stop_is_left_behind_at_the_bound() -> None:
    released = asyncio.Event()

    async def refuses() -> None:
        while not released.is_set():
            with suppress(asyncio.CancelledError):
                await released.wait()

    task = asyncio.create_task(refuses())
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await cancel_and_wait([task], within_s=0.2)
    assert not task.done()
    released.set()
    await task
