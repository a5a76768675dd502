"""The task consumer's fetch guard: a bare timeout becomes the one FastStream's loop handles."""

from __future__ import annotations

import nats.errors
import pytest

from zhibao_aggregator.task_consumer import _timing_out_as_nats


async def test_a_bare_timeout_of_a_fetch_is_raised_as_nats_timeout() -> None:
    async def fetch(batch: int, **_options: float) -> list[bytes]:
        raise TimeoutError  # what nats-py 2.16 raises when a partial batch's deadline passes

    with pytest.raises(nats.errors.TimeoutError):
        await _timing_out_as_nats(fetch)(5, timeout=0.01)


async def test_messages_fetched_pass_through() -> None:
    async def fetch(batch: int, **_options: float) -> list[bytes]:
        return [b"m"] * batch

    assert await _timing_out_as_nats(fetch)(2, timeout=1) == [b"m", b"m"]
