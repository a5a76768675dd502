"""Helper processes (``zhibao_shared.helper_process``): results, failures, and no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zhibao_shared.helper_process import HelperFailed, all_or_first_failure, start_helper


def square_with_pid(n: int) -> tuple[int, int]:
    """A helper's target: a result computed in another process."""
    return n * n, os.getpid()


def square(n: int) -> int:
    """A helper's target with a plain result."""
    return n * n


def refuse(reason: str) -> int:
    """A helper's target that raises."""
    raise ValueError(reason)


def vanish(code: int) -> int:
    """A helper's target that exits without a result (as a process killed would)."""
    os._exit(code)


def wait_forever(pid_file: str) -> int:
    """A helper's target that notes its pid and never returns."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        time.sleep(0.1)


async def test_a_helper_computes_in_another_process_and_hands_back_its_result() -> None:
    helper = start_helper(square_with_pid, 12)
    try:
        value, pid = await helper.result()
    finally:
        helper.stop()
    assert value == 144
    assert pid != os.getpid()


async def test_a_helper_that_raises_fails_the_caller_with_its_error() -> None:
    helper = start_helper(refuse, "no database here")
    try:
        with pytest.raises(HelperFailed, match="no database here"):
            await helper.result()
    finally:
        helper.stop()


async def test_a_helper_that_dies_without_a_result_fails_the_caller() -> None:
    helper = start_helper(vanish, 3)
    try:
        with pytest.raises(HelperFailed, match=r"exited \(3\) without a result"):
            await helper.result()
    finally:
        helper.stop()


async def test_works_run_together_give_their_results_in_order() -> None:
    async def after(seconds: float, value: int) -> int:
        await asyncio.sleep(seconds)
        return value

    helper = start_helper(square, 3)
    try:
        results = await all_or_first_failure([after(0.2, 1), helper.result(), after(0.0, 2)])
    finally:
        helper.stop()
    assert results == [1, 9, 2]


async def test_a_helper_failing_ends_the_work_beside_it_at_once() -> None:
    """A rebuild whose helper cannot start fails then, not after replaying alone."""
    cancelled = asyncio.Event()

    async def own_share() -> int:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    helper = start_helper(refuse, "the bus refused the helper")
    try:
        with pytest.raises(HelperFailed, match="the bus refused the helper"):
            await all_or_first_failure([own_share(), helper.result()])
    finally:
        helper.stop()
    assert cancelled.is_set()


def test_stopping_a_helper_ends_its_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    helper = start_helper(wait_forever, str(pid_file))
    pid = _pid_written(pid_file)
    helper.stop()
    assert not _alive(pid)


STARTER = """
import asyncio, sys
from tests.shared.test_helper_process import wait_forever
from zhibao_shared.helper_process import start_helper

async def main():
    helper = start_helper(wait_forever, sys.argv[1])
    await helper.result()

asyncio.run(main())
"""


def test_a_helper_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A rebuild killed with SIGKILL must not leave a helper writing to its database."""
    pid_file = tmp_path / "helper.pid"
    root = Path(__file__).resolve().parents[2]
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(pid_file)], cwd=root)
    try:
        pid = _pid_written(pid_file)
        assert _alive(pid)
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        assert not _alive(pid), "the helper outlived the process that started it"
    finally:
        starter.kill()
        starter.wait()


def _pid_written(pid_file: Path) -> int:
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text():
            return int(pid_file.read_text())
        time.sleep(0.1)
    raise AssertionError("the helper did not start")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
