"""Local scale-out proof: a 3-node cluster, intake, and two aggregators split by district.

The shipped NATS cluster configs run on loopback (TLS, accounts, permissions);
the events stream is replicated on all three nodes (``ZHIBAO_STREAM_REPLICAS=3``).
``zhibao intake`` and two ``zhibao aggregator`` processes, each with its own
district (``ZHIBAO_AGGREGATOR_DISTRICTS``) and durable consumer
(``ZHIBAO_AGGREGATOR_DURABLE``), sharing one PostgreSQL database, all read a two-district
registry written here and connect with the list of the three nodes in ``ZHIBAO_NATS_URL``.

A few thousand screenings with a known ground truth are posted through the
community client (spool, retries). Partway through, while posting goes on, the
node intake is connected to is SIGKILLed; beforehand it was made the leader of
the stream and of both consumers, so one crash forces a client failover and three
leader elections. Every event intake answered for must still be counted exactly
once, by the aggregator of its district only (each consumer filters its district),
and each aggregator's read API gives the ground truth of every unit of both
districts and of the city (the partitions share one database).
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest
import yaml
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlalchemy import text

from tests.deploy.cluster import LoopbackCluster
from tests.deploy.services import ServiceProcess
from tests.deploy.support import password
from zhibao_aggregator.migrate import migrate
from zhibao_client import SubmitReport, ZhibaoClient
from zhibao_shared.bus_access import deploy_accounts_conf
from zhibao_shared.db import make_engine
from zhibao_shared.events import Site
from zhibao_shared.subjects import EVENTS_STREAM, district_events
from zhibao_shared.tokens import Role, TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

CITY = "6401"
#: district → {street → communities}; two districts of different sizes.
DISTRICTS: dict[str, dict[str, list[str]]] = {
    "640106": {
        "640106001": ["640106001001", "640106001002", "640106001003"],
        "640106002": ["640106002001", "640106002002", "640106002003", "640106002004"],
    },
    "640105": {
        "640105001": ["640105001001", "640105001002"],
        "640105002": ["640105002001", "640105002002", "640105002003"],
    },
}
EVENTS_PER_DISTRICT = {"640106": 1800, "640105": 1300}
BATCH = 50
FEVER_C = 37.3
TIMEZONE = "Asia/Shanghai"
#: Per-screening counters the aggregator keeps, compared at every level.
METRICS = ("events", "screenings", "fevers", "travel_flagged", *(f"screenings_{s}" for s in Site))
WAIT_S = 60.0
T = TypeVar("T")


def registry_yaml() -> str:
    """The test registry: city 6401, two districts, two streets each, a few communities."""
    units: list[dict[str, Any]] = [
        {"code": CITY, "name": "银川市", "name_en": "Yinchuan", "level": "city", "parent": None}
    ]
    for district, streets in DISTRICTS.items():
        units.append(
            {"code": district, "name": f"区{district}", "level": "district", "parent": CITY}
        )
        for street, communities in streets.items():
            units.append(
                {"code": street, "name": f"街道{street}", "level": "street", "parent": district}
            )
            units += [
                {
                    "code": c,
                    "name": f"社区{c}",
                    "level": "community",
                    "parent": street,
                    "households": 3000,
                    "population": 6000,
                }
                for c in communities
            ]
    return yaml.safe_dump({"units": units}, allow_unicode=True, sort_keys=False)


def communities(district: str) -> list[str]:
    """Every community code of a district."""
    return [c for street in DISTRICTS[district].values() for c in street]


def all_units(district: str) -> list[str]:
    """The district, its streets and its communities."""
    return [district, *DISTRICTS[district], *communities(district)]


@dataclass(frozen=True)
class Workload:
    """The events to post and, per community, exactly what they must add up to."""

    events: list[dict[str, Any]]
    truth: dict[str, Counter[str]]
    day: date

    def expected(self, unit: str) -> Counter[str]:
        """Ground truth of any unit: the sum over the communities under it."""
        total: Counter[str] = Counter()
        for community, counts in self.truth.items():
            if community.startswith(unit):
                total.update(counts)
        return total


def workload(seed: int = 6) -> Workload:
    """Screenings for both districts, interleaved, all at one instant (one local day)."""
    rng = random.Random(seed)
    when = datetime.now(UTC) - timedelta(minutes=1)
    plan = [d for d, n in EVENTS_PER_DISTRICT.items() for _ in range(n)]
    rng.shuffle(plan)
    truth: dict[str, Counter[str]] = {c: Counter() for d in DISTRICTS for c in communities(d)}
    events: list[dict[str, Any]] = []
    for n, district in enumerate(plan):
        community = rng.choice(communities(district))
        temperature = round(rng.uniform(36.0, 38.6), 1)
        site = rng.choice(list(Site))
        travel = rng.random() < 0.1
        events.append(
            {
                "specversion": "1.0",
                "id": f"scale-{n:05d}",
                "source": f"/{community}/scale-out-test",
                "type": "zhibao.screening.v1",
                "subject": community,
                "time": when.isoformat(),
                "data": {
                    "temperature_c": temperature,
                    "site": site.value,
                    "travel_from_risk_area": travel,
                },
            }
        )
        counts = truth[community]
        counts.update(["events", "screenings", f"screenings_{site.value}"])
        if temperature >= FEVER_C:
            counts["fevers"] += 1
        if travel:
            counts["travel_flagged"] += 1
    return Workload(events, truth, when.astimezone(ZoneInfo(TIMEZONE)).date())


@pytest.fixture
def cluster(tmp_path: Path, dev_certs: Path) -> Iterator[LoopbackCluster]:
    """The shipped three-node cluster on loopback, formed."""
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    durables = [f"aggregator-{district}" for district in DISTRICTS]
    nodes = LoopbackCluster(workdir, dev_certs, accounts=deploy_accounts_conf(durables))
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


def nats_url(cluster: LoopbackCluster, user: str) -> str:
    """ZHIBAO_NATS_URL naming all three nodes, with one service user's credentials."""
    return ",".join(cluster.client_urls(user, password(user)))


def ops_urls(cluster: LoopbackCluster) -> list[str]:
    """Client URLs of the running nodes, as the unrestricted ops user."""
    urls = cluster.client_urls("ops", password("ops"))
    return [urls[n - 1] for n in sorted(cluster.processes)]


def start_all(services: list[ServiceProcess]) -> None:
    """Start services side by side (each waits for its own /readyz)."""
    with ThreadPoolExecutor(len(services)) as pool:
        for future in [pool.submit(s.start) for s in services]:
            future.result()


def node_of(cluster: LoopbackCluster, connection_name: str) -> int:
    """The node a named client connection is attached to (from the nodes' /connz)."""
    found = []
    for number in sorted(cluster.processes):
        connections = cluster.monitor(number, "/connz").get("connections") or []
        assert isinstance(connections, list)
        if any(c.get("name") == connection_name for c in connections):
            found.append(number)
    assert len(found) == 1, f"{connection_name} is connected to nodes {found}"
    return found[0]


@dataclass
class Poster:
    """Posts the events through the community client (spooled, retried) on its own thread.

    It signals ``reached`` at one third of the batches and goes past two thirds only
    once ``killed`` is set, so the node dies while posting goes on.
    """

    intake_url: str
    token: str
    spool: Path
    reached: threading.Event
    killed: threading.Event
    #: Submits and drains after which events were still spooled (intake could not take them).
    deferred: int = 0

    def run(self, events: list[dict[str, Any]]) -> SubmitReport:
        """Post every event; returns what intake answered, all retries included."""
        batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
        signal_at, resume_at = len(batches) // 3, 2 * len(batches) // 3
        total = SubmitReport()
        with ZhibaoClient(
            self.intake_url,
            self.token,
            self.spool,
            batch_size=BATCH,
            base_delay_s=0.2,
            max_delay_s=2.0,
            seed=1,
        ) as client:
            for index, batch in enumerate(batches):
                if index == signal_at:
                    self.reached.set()
                if index == resume_at and not self.killed.wait(WAIT_S):
                    raise AssertionError("the node was not killed while posting")
                self._fold(total, client.submit(batch))
            deadline = time.monotonic() + WAIT_S
            while client.pending and time.monotonic() < deadline:
                remaining = max(0.0, deadline - time.monotonic())
                self._fold(total, client.drain_until_empty(remaining))
        return total

    def _fold(self, total: SubmitReport, report: SubmitReport) -> None:
        self.deferred += report.spooled > 0
        total.add(report)


def figures(aggregator: ServiceProcess, read: str, unit: str, day: date) -> dict[str, Any]:
    """A unit's figures for ``day`` from an aggregator's API."""
    response = httpx.get(
        f"{aggregator.url}/v1/units/{unit}/rollup",
        params={"date": day.isoformat()},
        headers={"Authorization": f"Bearer {read}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["figures"])


def picked(values: dict[str, Any]) -> dict[str, int]:
    """The compared metrics of a figures mapping (or of a Counter)."""
    return {name: int(values.get(name) or 0) for name in METRICS}


async def _ask(urls: list[str], ca: Path, query: Callable[[NatsClient], Awaitable[T]]) -> T:
    tls = ssl.create_default_context(cafile=str(ca))
    nc = await nats.connect(urls, tls=tls, connect_timeout=3)
    try:
        return await query(nc)
    finally:
        await nc.close()


def ask(
    cluster: LoopbackCluster, ca: Path, query: Callable[[NatsClient], Awaitable[T]], what: str
) -> T:
    """A query as the ops user on the running nodes, retried (bounded) while the
    cluster answers 'temporarily unavailable' (leaders being elected)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return asyncio.run(_ask(ops_urls(cluster), ca, query))
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer about {what} in {WAIT_S} s: {exc!r}") from exc
            time.sleep(0.5)


def js(nc: NatsClient) -> JetStreamContext:
    """A JetStream context with a timeout that tolerates a loaded machine."""
    return nc.jetstream(timeout=5)


def consumer_state(cluster: LoopbackCluster, ca: Path, durable: str) -> tuple[int, int, list[str]]:
    """(pending, ack pending, filter subjects) of a durable consumer on the events stream."""
    info = ask(cluster, ca, lambda nc: js(nc).consumer_info(EVENTS_STREAM, durable), durable)
    filters = list(info.config.filter_subjects or [])
    if info.config.filter_subject:
        filters.append(info.config.filter_subject)
    return info.num_pending or 0, info.num_ack_pending or 0, filters


def stream_state(cluster: LoopbackCluster, ca: Path) -> tuple[int, int, str]:
    """(messages, replicas, leader) of the events stream."""
    info = ask(cluster, ca, lambda nc: js(nc).stream_info(EVENTS_STREAM), EVENTS_STREAM)
    leader = (info.cluster.leader if info.cluster else None) or ""
    return info.state.messages, info.config.num_replicas or 1, leader


def move_leaders_to(cluster: LoopbackCluster, ca: Path, node: int, durables: list[str]) -> None:
    """Make ``nats-<node>`` the leader of the events stream and of the durables (leader
    step-downs with a preferred placement, repeated until it holds), so that killing
    that node also forces the stream and both consumers to elect new leaders."""
    preferred = json.dumps({"placement": {"preferred": f"nats-{node}"}}).encode()
    targets = [("$JS.API.STREAM.LEADER.STEPDOWN." + EVENTS_STREAM, None)] + [
        (f"$JS.API.CONSUMER.LEADER.STEPDOWN.{EVENTS_STREAM}.{d}", d) for d in durables
    ]
    for subject, durable in targets:

        async def leader(nc: NatsClient, durable: str | None = durable) -> str:
            if durable is None:
                info: Any = await js(nc).stream_info(EVENTS_STREAM)
            else:
                info = await js(nc).consumer_info(EVENTS_STREAM, durable)
            return str((info.cluster.leader if info.cluster else None) or "")

        async def step_down(nc: NatsClient, subject: str = subject) -> str:
            return (await nc.request(subject, preferred, timeout=5)).data.decode()

        deadline = time.monotonic() + WAIT_S
        while (now := ask(cluster, ca, leader, subject)) != f"nats-{node}":
            assert time.monotonic() < deadline, f"{subject}: leader stays {now}, not nats-{node}"
            ask(cluster, ca, step_down, subject)
            time.sleep(0.5)


async def applied_events(url: str) -> int:
    """Events applied to the shared database, by both partitions together."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT count(*) FROM applied_events")) or 0)
    finally:
        await engine.dispose()


def wait_caught_up(
    cluster: LoopbackCluster,
    ca: Path,
    aggregators: dict[str, ServiceProcess],
    read: str,
    load: Workload,
) -> None:
    """Until each aggregator shows its district's ground truth and its durable has
    nothing pending or unacknowledged (bounded; says what was last seen)."""
    deadline = time.monotonic() + WAIT_S
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        done = True
        for district, aggregator in aggregators.items():
            seen = picked(figures(aggregator, read, district, load.day))
            pending = consumer_state(cluster, ca, f"aggregator-{district}")[:2]
            last[district] = {"figures": seen, "pending/ack pending": pending}
            done = done and seen == picked(load.expected(district)) and pending == (0, 0)
        if done:
            return
        time.sleep(0.5)
    raise AssertionError(f"the aggregators did not catch up in {WAIT_S} s; last seen {last}")


#: The replicated streams' size limit in the loopback cluster.
STREAM_BYTES = 512 * 1024**2


def test_two_partitioned_aggregators_count_exactly_through_a_killed_node(
    cluster: LoopbackCluster, dev_certs: Path, tmp_path: Path, postgres_url: str
) -> None:
    """Exact rollups from two district partitions sharing one PostgreSQL while a NATS node
    dies mid-posting: each consumes only its district, and every instance reads every
    unit of both, the city included."""
    ca = dev_certs / "ca.pem"
    registry = tmp_path / "registry.yaml"
    registry.write_text(registry_yaml(), encoding="utf-8")
    env = {
        "ZHIBAO_DATA_DIR": str(tmp_path / "data"),
        "ZHIBAO_REGISTRY_PATH": str(registry),
        "ZHIBAO_TIMEZONE": TIMEZONE,
        "ZHIBAO_FEVER_THRESHOLD_C": str(FEVER_C),
        "ZHIBAO_STREAM_REPLICAS": "3",
        # three nodes on one disk reserve every replicated stream's limit three times:
        # 10 GiB defaults for events and the audit trail do not always fit a CI machine
        "ZHIBAO_EVENTS_MAX_BYTES": str(STREAM_BYTES),
        "ZHIBAO_AUDIT_MAX_BYTES": str(STREAM_BYTES),
        "ZHIBAO_PSEUDONYM_KEY": "scale-out-test-pseudonym-key-0123456789abcdef",
        "ZHIBAO_LOG_JSON": "true",
        "SSL_CERT_FILE": str(ca),  # as deploy/ does: Python's ssl trusts the cluster's CA
    }
    asyncio.run(migrate(postgres_url))  # = zhibao aggregator migrate, once for all partitions
    aggregators: dict[str, ServiceProcess] = {}
    for district in DISTRICTS:
        own = {
            **env,
            "ZHIBAO_NATS_URL": nats_url(cluster, "aggregator"),
            "ZHIBAO_AGGREGATOR_DATABASE_URL": postgres_url,
            "ZHIBAO_AGGREGATOR_DISTRICTS": f'["{district}"]',
            "ZHIBAO_AGGREGATOR_DURABLE": f"aggregator-{district}",
        }
        aggregators[district] = ServiceProcess(
            "aggregator", own, tmp_path / f"aggregator-{district}.log"
        )
    intake = ServiceProcess(
        "intake", {**env, "ZHIBAO_NATS_URL": nats_url(cluster, "intake")}, tmp_path / "intake.log"
    )
    load = workload()
    services = [intake, *aggregators.values()]
    store = TokenStore.in_data_dir(tmp_path / "data")  # what `zhibao token create` does
    try:
        report_token = store.create(scopes=[CITY], role=Role.REPORT, name="reporter")[1]
        read = store.create(scopes=[CITY], role=Role.READ, name="reader")[1]
    finally:
        store.close()
    try:
        start_all(services)
        messages, replicas, _ = stream_state(cluster, ca)
        assert (messages, replicas) == (0, 3), "the events stream is not an empty R3 stream"

        intake_node = node_of(cluster, "zhibao-intake")
        move_leaders_to(cluster, ca, intake_node, [f"aggregator-{d}" for d in DISTRICTS])

        poster = Poster(
            intake.url, report_token, tmp_path / "spool.db", threading.Event(), threading.Event()
        )
        with ThreadPoolExecutor(1) as pool:
            posting = pool.submit(poster.run, load.events)
            while not poster.reached.wait(0.1):
                if posting.done():
                    posting.result()
                    raise AssertionError("posting ended before reaching the kill point")
            victim = node_of(cluster, "zhibao-intake")
            assert victim == intake_node, "intake moved to another node before the kill"
            cluster.kill(victim)  # intake's node, and the stream's and consumers' leader
            poster.killed.set()
            delivered = posting.result(timeout=2 * WAIT_S)

        assert delivered.rejected == [], [r.describe() for r in delivered.rejected[:5]]
        assert delivered.spooled == 0, f"{delivered.spooled} events never answered for"
        assert delivered.delivered == len(load.events), delivered.summary()
        survivor = node_of(cluster, "zhibao-intake")
        assert survivor != victim

        wait_caught_up(cluster, ca, aggregators, read, load)
        messages, replicas, leader = stream_state(cluster, ca)
        assert replicas == 3
        # Events travel in bundles; a resend after the kill may be stored twice. The exact
        # rollups below prove every event counted once.
        assert 0 < messages < len(load.events)

        for district, aggregator in aggregators.items():
            _, _, filters = consumer_state(cluster, ca, f"aggregator-{district}")
            assert filters == [district_events(district)]
            for unit in [*all_units(district), *all_units(next(iter(set(DISTRICTS) - {district})))]:
                assert picked(figures(aggregator, read, unit, load.day)) == picked(
                    load.expected(unit)
                ), f"aggregator of {district}: wrong figures for {unit}"
            assert picked(figures(aggregator, read, CITY, load.day)) == picked(
                load.expected(CITY)
            ), f"aggregator of {district}: the city does not cover every partition"
        print(
            f"\n{len(load.events)} events: {delivered.summary()}; "
            f"{poster.deferred} submits left events spooled; "
            f"killed node {victim}, intake then on node {survivor}, stream leader {leader}"
        )
    finally:
        for service in services:
            service.stop()

    for log in sorted((tmp_path / "cluster").glob("nats-*.log")):
        violations = [line for line in log.read_text().splitlines() if "Violation" in line]
        assert violations == [], f"{log.name}: {violations[:3]}"
    assert asyncio.run(applied_events(postgres_url)) == len(load.events)
