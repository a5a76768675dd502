"""Posting simulated traffic through the real intake API, paced by a speed factor."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zhibao_client.client import Rejection, SubmitReport, ZhibaoClient
from zhibao_client.simulator.command_centre import CommandCentre
from zhibao_client.simulator.loop import (
    DeclareLevel,
    DeclarePoint,
    IssueTasks,
    LiftPoint,
    LoopStep,
    ReportResult,
)

#: The response service answers an issue before its outbox announces the tasks on the
#: stream, and intake refuses a result for a task it has not seen announced as unknown.
#: An unpaced run reports results moments after the issue: those are sent again, every
#: ``RESULT_RETRY_S`` for up to ``RESULT_RETRIES`` times, before they count as refused.
RESULT_RETRY_S = 0.2
RESULT_RETRIES = 50


@dataclass
class Progress:
    """What has been sent so far (the progress line shows it)."""

    day: str = ""
    sent: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    spooled: int = 0
    levels: int = 0  # declarations (and liftings) the command centre made
    tasks_issued: int = 0

    def line(self) -> str:
        """One line: the simulated day, events sent by type, and intake's answers."""
        kinds = " ".join(f"{k.split('.')[1]} {n:,}" for k, n in sorted(self.by_type.items()))
        loop = f" | levels {self.levels} tasks {self.tasks_issued:,}" if self.levels else ""
        return (
            f"{self.day} | sent {self.sent:,} ({kinds}) | accepted {self.accepted:,} "
            f"duplicates {self.duplicates:,} rejected {len(self.rejected):,} "
            f"spooled {self.spooled:,}{loop}"
        )


class Pacer:
    """Maps simulated time to wall-clock time: one simulated day in ``seconds_per_day``."""

    def __init__(self, seconds_per_day: float) -> None:
        self._ratio = seconds_per_day / 86_400
        self._origin: tuple[datetime, float] | None = None

    def wait_s(self, moment: datetime) -> float:
        """Seconds to wait before an event of simulated ``moment`` is due (0 when unpaced)."""
        if self._ratio <= 0:
            return 0.0
        if self._origin is None:
            self._origin = (moment, time.monotonic())
        simulated, real = self._origin
        due = real + (moment - simulated).total_seconds() * self._ratio
        return max(0.0, due - time.monotonic())


def run(
    events: Iterable[dict[str, Any] | LoopStep],
    client: ZhibaoClient,
    *,
    seconds_per_day: float = 0.0,
    batch_size: int = 200,
    on_progress: Callable[[Progress], None] | None = None,
    drain_wait_s: float = 60.0,
    stop: threading.Event | None = None,
    centre: CommandCentre | None = None,
) -> Progress:
    """Send every event through ``client`` (spooled first, so none is lost) and report.

    Events are batched; with ``seconds_per_day`` > 0 each waits until its
    simulated time is due. At the end the spool is drained for up to
    ``drain_wait_s`` seconds. Setting ``stop`` ends the run early: what was
    handed to the client stays in its spool for the next run. Response-loop
    steps (``Simulation.timeline()``) are carried out by ``centre`` (skipped
    without one): what is pending is sent first, a result becomes an event.
    """
    progress = Progress()
    pacer = Pacer(seconds_per_day)
    stop = stop or threading.Event()
    pending: list[dict[str, Any]] = []
    for item in events:
        moment = item.when if not isinstance(item, dict) else datetime.fromisoformat(item["time"])
        wait = pacer.wait_s(moment)
        if pending and (wait > 0 or len(pending) >= batch_size):
            _flush(client, pending, progress, on_progress)
        if stop.wait(wait) if wait > 0 else stop.is_set():
            return progress
        progress.day = moment.date().isoformat()
        if isinstance(item, dict):
            pending.append(item)
        elif centre is not None:
            event = _act(item, centre, client, pending, progress, on_progress, drain_wait_s)
            if event is not None:
                pending.append(event)
    _flush(client, pending, progress, on_progress)
    drained = client.drain_until_empty(max_wait_s=drain_wait_s)
    _record(progress, _resend_early_results(client, drained), on_progress)
    return progress


def _act(
    step: LoopStep,
    centre: CommandCentre,
    client: ZhibaoClient,
    pending: list[dict[str, Any]],
    progress: Progress,
    on_progress: Callable[[Progress], None] | None,
    drain_wait_s: float,
) -> dict[str, Any] | None:
    """Carry out one loop step; a result's event is returned for sending with the rest."""
    if isinstance(step, ReportResult):
        return centre.result_event(step)
    _flush(client, pending, progress, on_progress)
    if isinstance(step, DeclareLevel):

        def deliver_pending() -> None:
            drained = client.drain_until_empty(max_wait_s=drain_wait_s)
            _record(progress, _resend_early_results(client, drained), on_progress)

        centre.declare(step, before=deliver_pending)
        progress.levels = centre.levels
    elif isinstance(step, DeclarePoint):
        centre.declare_point(step)
    elif isinstance(step, LiftPoint):
        centre.lift_point(step)
    elif isinstance(step, IssueTasks):
        progress.tasks_issued += centre.issue(step)
    return None


def _flush(
    client: ZhibaoClient,
    pending: list[dict[str, Any]],
    progress: Progress,
    on_progress: Callable[[Progress], None] | None,
) -> None:
    if not pending:
        return
    progress.sent += len(pending)
    progress.by_type.update(e["type"] for e in pending)
    report = _resend_early_results(client, client.submit(pending))
    pending.clear()
    _record(progress, report, on_progress)


def _early_result(rejection: Rejection) -> bool:
    event = rejection.event
    return (
        rejection.code == "unknown_task"
        and isinstance(event, dict)
        and event.get("type") == "zhibao.task_result.v1"
    )


def _resend_early_results(client: ZhibaoClient, report: SubmitReport) -> SubmitReport:
    """``report`` with the results refused as of an unknown task sent again until the
    task is known (or the retries are used up: then they stay refused)."""
    for _attempt in range(RESULT_RETRIES):
        early = [r.event for r in report.rejected if _early_result(r)]
        if not early:
            break
        time.sleep(RESULT_RETRY_S)
        report.rejected = [r for r in report.rejected if not _early_result(r)]
        report.add(client.submit(early))
    return report


def _record(
    progress: Progress, report: Any, on_progress: Callable[[Progress], None] | None
) -> None:
    progress.accepted += report.accepted
    progress.duplicates += report.duplicates
    progress.rejected += report.rejected
    progress.spooled = report.spooled
    if on_progress is not None:
        on_progress(progress)
