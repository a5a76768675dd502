"""Attack: hold SQLite's write lock (another process writing, a long backup) while calling
the alerts API's write endpoints. It used to answer 500 once the busy timeout ran out;
now each write retries with backoff, then answers 503 with Retry-After, and succeeds
once the lock is released.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.alerts.conftest import confirmed
from tests.alerts.service_process import RunningAlerts, publish, running_alerts, wait_for
from zhibao_shared.natsserver import NatsServer

STREET = "640106001"
FIRST, SECOND = f"{STREET}001", f"{STREET}002"


@contextmanager
def write_locked(database: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (BEGIN EXCLUSIVE) meanwhile."""
    holder = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def _alert_ids(alerts: RunningAlerts, secret: str) -> dict[str, int]:
    answer = alerts.call("GET", "/v1/alerts", secret).json()["alerts"]
    return {a["unit"]: a["id"] for a in answer}


def test_writes_under_a_held_sqlite_lock_answer_503_then_succeed(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    with running_alerts(tmp_path, nats_server) as alerts:
        token_id, secret = alerts.token(STREET, name="street duty")
        second = confirmed(community=SECOND, pid="c" * 32)  # a case alert is one per person
        publish(alerts.nats_url, [confirmed(community=FIRST), second])
        wait_for(lambda: len(_alert_ids(alerts, secret)) == 2)
        ids = _alert_ids(alerts, secret)
        body = {
            "matchers": [{"name": "community", "value": FIRST}],
            "duration_minutes": 30,
            "comment": "handled on site",
        }
        old = alerts.call("POST", "/v1/silences", secret, json=body).json()["id"]

        writes: list[tuple[str, Callable[[], httpx.Response]]] = [
            ("ack", lambda: alerts.call("POST", f"/v1/alerts/{ids[FIRST]}/ack", secret)),
            ("resolve", lambda: alerts.call("POST", f"/v1/alerts/{ids[SECOND]}/resolve", secret)),
            ("silence", lambda: alerts.call("POST", "/v1/silences", secret, json=body)),
            ("expire", lambda: alerts.call("DELETE", f"/v1/silences/{old}", secret)),
        ]
        with write_locked(alerts.sqlite_file):
            for name, write in writes:
                answer = write()
                assert answer.status_code == 503, (name, answer.status_code, answer.text)
                assert int(answer.headers["retry-after"]) > 0, name
                assert "busy" in answer.json()["detail"]
        for name, write in writes:
            answer = write()
            assert answer.status_code in (200, 201), (name, answer.status_code, answer.text)

        states = {
            a["unit"]: a["state"]
            for a in alerts.call(
                "GET", "/v1/alerts", secret, params={"state": ["acknowledged", "resolved"]}
            ).json()["alerts"]
        }
        assert states == {FIRST: "acknowledged", SECOND: "resolved"}
        listed = alerts.call(
            "GET", "/v1/silences", secret, params={"include_expired": "true"}
        ).json()["silences"]
        expired = next(s for s in listed if s["id"] == old)
        assert (expired["expired_by"], expired["expired_by_token"]) == ("street duty", token_id)

        # a lock released within the retry budget (3 s) only delays the write
        answers: list[httpx.Response] = []
        with write_locked(alerts.sqlite_file):
            waiting = threading.Thread(
                target=lambda: answers.append(
                    alerts.call("POST", f"/v1/alerts/{ids[FIRST]}/resolve", secret)
                )
            )
            waiting.start()
            time.sleep(1.0)
        waiting.join(30)
        assert [a.status_code for a in answers] == [200], [a.text for a in answers]
