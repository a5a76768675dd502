"""Attack: a silence whose pattern backtracks for minutes, evaluated for every new alert,
stalls the alerts service (its event loop runs the match). Now patterns are literal or
glob (matched in bounded time), regular expressions are refused with a clear 422, and a
regular expression already in the database (written by an older version) is never run.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from tests.alerts.conftest import confirmed, published
from tests.alerts.service_process import publish, running_alerts, wait_for
from zhibao_shared.natsserver import NatsServer

STREET = "640106001"
COMMUNITIES = [f"{STREET}00{n}" for n in range(1, 6)]
#: ``re.fullmatch`` of this against "immediate_confirmed" takes minutes (3**19 paths).
CATASTROPHIC = r"(\w|\w|\w)*z"


def _legacy_regex_silence(env: dict[str, str]) -> None:
    """A silence as an older version stored it: a regex matcher, judged first."""
    database = Path(env["ZHIBAO_DATA_DIR"]) / "alerts.db"
    matchers = [
        {"name": "alertname", "value": CATASTROPHIC, "is_regex": True},
        {"name": "street", "value": STREET, "is_regex": False},
    ]
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment) "
            "VALUES (?, '2020-01-01 00:00:00', '2999-01-01 00:00:00', 'old version', 'x')",
            (json.dumps(matchers),),
        )


class Prober:
    """Polls ``/healthz`` from a thread and keeps the slowest answer's time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                assert client.get(f"{self.url}/healthz").status_code == 200
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.answers += 1
                time.sleep(0.05)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def test_a_catastrophic_silence_pattern_cannot_stall_the_service(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    with running_alerts(tmp_path, nats_server, before_start=_legacy_regex_silence) as alerts:
        _token_id, secret = alerts.token(STREET)
        scoped = {"name": "street", "value": STREET}

        def silence(*matchers: dict[str, object]) -> httpx.Response:
            body = {"matchers": [*matchers, scoped], "duration_minutes": 60, "comment": "t"}
            return alerts.call("POST", "/v1/silences", secret, json=body)

        refused = silence({"name": "alertname", "value": CATASTROPHIC, "is_regex": True})
        assert refused.status_code == 422
        assert "regular-expression matchers are not accepted" in refused.text
        long_glob = silence({"name": "alertname", "value": "*?" * 51, "is_glob": True})
        assert long_glob.status_code == 422, "patterns are at most 100 characters"
        severity: dict[str, object] = {"name": "severity", "value": "x"}
        many = silence(*[severity] * 10)
        assert many.status_code == 422, "at most 10 matchers"
        hostile_glob = {"name": "alertname", "value": "*a" * 49 + "*z", "is_glob": True}
        assert silence(hostile_glob).status_code == 201

        with Prober(alerts.url) as prober:
            # one person per community: a person is paged once, wherever reported again
            publish(
                alerts.nats_url,
                [confirmed(f"{n:032x}", community=c) for n, c in enumerate(COMMUNITIES)],
            )
            publish(
                alerts.nats_url,
                [
                    published("case", _case(n, "asymptomatic"), community=c)
                    for n, c in enumerate(COMMUNITIES)
                ],
            )

            def raised() -> int:
                answer = alerts.call("GET", "/v1/alerts", secret, params={"limit": 500})
                return len(answer.json()["alerts"])

            wait_for(lambda: raised() == 2 * len(COMMUNITIES), timeout_s=60)
            time.sleep(1.0)
        assert prober.answers > 10
        assert prober.slowest < 1.0, f"/healthz took {prober.slowest:.2f} s"
        states = alerts.call("GET", "/v1/alerts", secret, params={"limit": 500}).json()
        assert {a["state"] for a in states["alerts"]} == {"firing"}, "neither silence matched"


def _case(n: int, classification: str) -> dict[str, object]:
    return {"person": {"pid": f"b{n:031x}"}, "classification": classification}
