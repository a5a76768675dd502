"""Faults at seeded moments of the load: which fault, after how many events.

The schedule is drawn from a seed (kinds shuffled, moments spread over the
first three quarters of the events), so a run can be repeated. The sender
(a helper thread) reports its progress to a :class:`Gate`; the main thread
waits for each fault's moment, lets the sender go on once the fault has
begun, and performs it (process restarts belong to the main thread: see
:mod:`tests.faults.system`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.faults.system import System

KILL_INTAKE = "SIGKILL+restart intake"
KILL_AGGREGATOR = "SIGKILL+restart aggregator"
KILL_ALERTS = "SIGKILL+restart alerts"
RESTART_NATS = "restart nats-server"
RESTART_POSTGRES = "restart PostgreSQL"
WEBHOOK_FAILING = "webhook answers 500"
WEBHOOK_SLOW = "webhook slow"


@dataclass(frozen=True)
class Fault:
    """One fault: its kind and the number of events sent before it begins."""

    kind: str
    after_events: int


def schedule(kinds: Counter[str], total_events: int, seed: int) -> list[Fault]:
    """The faults in the order they happen, at seeded moments in 5–75 % of the events."""
    rng = random.Random(seed)
    pool = sorted(kinds.elements())
    rng.shuffle(pool)
    moments = sorted(rng.randint(total_events // 20, total_events * 3 // 4) for _ in pool)
    return [Fault(kind, at) for kind, at in zip(pool, moments, strict=True)]


@dataclass
class Gate:
    """Sender progress, and a hold while a due fault has not begun yet."""

    sent: int = 0
    finished: bool = False
    stopped: threading.Event = field(default_factory=threading.Event)
    _due_at: int | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def progress(self, sent: int, hold_s: float = 60.0) -> None:
        """Called by the sender after each batch: waits (bounded) while a fault is due."""
        with self._changed:
            self.sent = sent
            self._changed.notify_all()
            self._changed.wait_for(
                lambda: self._due_at is None or self.sent < self._due_at, timeout=hold_s
            )

    def finish(self) -> None:
        """The sender is done."""
        with self._changed:
            self.finished = True
            self._changed.notify_all()

    def wait_for(self, fault: Fault, timeout_s: float) -> None:
        """Block until the sender reached the fault's moment (or finished)."""
        with self._changed:
            self._due_at = fault.after_events
            reached = self._changed.wait_for(
                lambda: self.finished or self.sent >= fault.after_events, timeout=timeout_s
            )
        assert reached, f"the sender did not reach {fault.after_events} events in {timeout_s}s"

    def abandon(self) -> None:
        """The run failed: stop the sender and stop holding it."""
        self.stopped.set()
        self.release()

    def release(self) -> None:
        """The fault has begun: the sender may go on."""
        with self._changed:
            self._due_at = None
            self._changed.notify_all()


def action(system: System, kind: str, rng: random.Random) -> Callable[[], None]:
    """What performing a fault of ``kind`` does."""
    receiver = system.receiver
    actions: dict[str, Callable[[], None]] = {
        KILL_INTAKE: lambda: system.crash("intake"),
        KILL_AGGREGATOR: lambda: system.crash("aggregator"),
        KILL_ALERTS: lambda: system.crash("alerts"),
        RESTART_NATS: system.restart_nats,
        RESTART_POSTGRES: system.restart_postgres,
        WEBHOOK_FAILING: lambda: receiver.fail_for(rng.uniform(10, 20)),
        # Sometimes longer than the dispatcher's 5 s timeout: the page arrives, the
        # sender sees a timeout and sends it again (at least once).
        WEBHOOK_SLOW: lambda: receiver.slow_for(rng.uniform(10, 20), rng.uniform(1, 7)),
    }
    return actions[kind]


@dataclass
class Injected:
    """What was injected, by kind, and when (seconds since the load began)."""

    by_kind: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)


def inject(system: System, faults: list[Fault], gate: Gate, seed: int, started: float) -> Injected:
    """Perform each fault at its moment; returns what was done."""
    rng = random.Random(seed)
    done = Injected()
    for fault in faults:
        gate.wait_for(fault, timeout_s=180)
        gate.release()
        at, sent = time.monotonic() - started, gate.sent
        action(system, fault.kind, rng)()
        took = time.monotonic() - started - at
        done.by_kind[fault.kind] += 1
        done.log.append(f"{at:6.1f}s after {sent:>6,} events: {fault.kind} (took {took:.1f}s)")
    return done
