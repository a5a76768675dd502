"""In-process harness of the aggregator's hot paths (a measurement tool, not the benchmark).

Loads ``--events`` events spread over ``--days`` days (the benchmark's mix: screenings,
1 in 200 a suspected case, 1 in 500 a home isolation start, each about a new person)
into a real SQLite database through the aggregator's own handler, in bundles decoded
like the consumer decodes them, then times rollup reads through the HTTP API in
process (httpx's ASGI transport, a read token) at every level. CPU time is reported
beside wall time: the machine it runs on is shared.

    uv run python -m zhibao_bench.aggregator_harness --events 200000 --reads 400
    uv run python -m zhibao_bench.aggregator_harness --events 20000 --profile reads
    uv run python -m zhibao_bench.aggregator_harness --events 50000 --replay --batch 5000

``--profile load|reads`` prints the top of a cProfile of that part.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.bootstrap import reader, rules
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.http_api import add_error_handlers, build_router
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.read_fastpath import AggregatorApp, FastRollup
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.replay import read_indexes_deferred, replay_engine
from zhibao_aggregator.storage.writer import HeldCounters
from zhibao_bench.loadclient import percentile
from zhibao_bench.reads import LEVELS, units_by_level
from zhibao_bench.workload import SITES, communities
from zhibao_shared import direct
from zhibao_shared.consumer import Delivery
from zhibao_shared.db import make_engine, sqlite_url
from zhibao_shared.events import bundle_payload, parse_message
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.tokens import Role, TokenStore

BUNDLE = 100


def published_events(count: int, days: float, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``count`` published events (as intake publishes them) spread over ``days`` days."""
    rng = random.Random(seed)
    codes = communities()
    now = datetime.now(UTC)
    for i in range(count):
        community = codes[i] if i < len(codes) else rng.choice(codes)
        when = now - timedelta(seconds=rng.uniform(60, days * 86_400 - 3600))
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"h-{seed}-{i}",
            "source": f"/{community}/gate{i % 7}",
            "subject": community,
            "time": when.isoformat(),
            "reporter": "tok-bench",
            "receivedat": now.isoformat(),
        }
        person = {"pid": f"{seed:08x}{i:024x}"}
        if i % 200 == 199:
            data: dict[str, Any] = {"person": person, "classification": "suspected"}
            event |= {"type": "zhibao.case.v1", "data": data}
        elif i % 500 == 250:
            data = {"person": person, "action": "start", "kind": "home"}
            event |= {"type": "zhibao.isolation.v1", "data": data}
        else:
            data = {
                "temperature_c": round(rng.gauss(36.6, 0.35), 1),
                "site": rng.choice(SITES),
                "building": str(rng.randrange(1, 30)),  # a label, as the workload's
                "travel_from_risk_area": i % 40 == 3,
            }
            event |= {"type": "zhibao.screening.v1", "data": data}
        yield event


def bundles(count: int, days: float) -> list[bytes]:
    """The events as bundle payloads of ``BUNDLE`` events (what intake publishes)."""
    import json

    out: list[bytes] = []
    part: list[bytes] = []
    for event in published_events(count, days):
        part.append(json.dumps(event).encode())
        if len(part) == BUNDLE:
            out.append(bundle_payload(part))
            part = []
    if part:
        out.append(bundle_payload(part))
    return out


def _deliveries(payloads: list[bytes], first_sequence: int) -> list[Delivery]:
    return [
        Delivery(event, "zhibao.events.bundle", first_sequence + n, 1)
        for n, payload in enumerate(payloads)
        for event in parse_message(payload)
    ]


async def load(
    handler: Callable[[list[Delivery]], Awaitable[None]],
    payloads: list[bytes],
    batch: int,
    finish: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, float]:
    """Decode and apply ``payloads`` in handler calls of about ``batch`` events (then
    ``finish``, as a rebuild writes what it held)."""
    per_call = max(1, batch // BUNDLE)
    wall, cpu = time.perf_counter(), time.process_time()
    events = 0
    for start in range(0, len(payloads), per_call):
        deliveries = _deliveries(payloads[start : start + per_call], start)
        events += len(deliveries)
        await handler(deliveries)
    if finish is not None:
        await finish()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "events": events,
        "wall_s": round(wall, 2),
        "events_per_s": round(events / wall),
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
    }


def read_app(
    settings: AggregatorSettings, engine: AsyncEngine, *, fast: bool = True
) -> tuple[FastAPI, str]:
    """The rollup routes with a city-wide read token (as the service mounts them; without
    the fast path of :mod:`zhibao_aggregator.read_fastpath` unless ``fast``)."""
    store = TokenStore(settings.data_dir / "tokens.db")
    _token, secret = store.create(scopes=["64"], role=Role.READ, name="harness")
    read_side, auth = reader(settings, engine), TokenAuth(store)
    app = AggregatorApp()
    add_error_handlers(app)
    app.include_router(build_router(read_side, auth))
    if fast:
        app.fast_rollup = FastRollup(read_side, auth)
    return app, secret


async def reads(app: FastAPI, secret: str, requests: int) -> dict[str, Any]:
    """Today's rollup of units cycling through every level; latency per level."""
    units = units_by_level()
    headers = {"Authorization": f"Bearer {secret}"}
    latencies: dict[str, list[float]] = {level: [] for level in LEVELS}
    transport = httpx.ASGITransport(app=app)
    cpu = time.process_time()
    async with httpx.AsyncClient(transport=transport, base_url="http://harness") as client:
        for i in range(requests):
            level = LEVELS[i % len(LEVELS)]
            codes = units[level]
            code = codes[i // len(LEVELS) % len(codes)]
            started = time.perf_counter()
            answer = await client.get(f"/v1/units/{code}/rollup", headers=headers)
            latencies[level].append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    cpu = time.process_time() - cpu
    return {
        "cpu_ms_per_read": round(cpu / requests * 1000, 2),
        **{
            level: {
                "p50_ms": round(percentile(found, 50), 2),
                "p99_ms": round(percentile(found, 99), 2),
            }
            for level, found in latencies.items()
            if found
        },
    }


def _no_direct_engine(_engine: object, *, begin: str | None = None) -> None:
    """What ``direct_engine`` gives for a file that is not SQLite (every statement then
    goes through the async engine)."""
    return None


async def main(args: argparse.Namespace) -> None:
    """Load, read, report (and profile the part asked for)."""
    if args.aiosqlite:  # compare: every statement through aiosqlite, as before zhibao_shared.direct
        direct.direct_engine = _no_direct_engine  # type: ignore[assignment]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    root = Path(args.dir or tempfile.mkdtemp(prefix="zhibao-harness-"))
    settings = AggregatorSettings(data_dir=root / "data", _env_file=None)
    url = sqlite_url(root, "harness")
    loaded = (root / "harness.db").exists()
    await migrate(url)
    engine = replay_engine(url) if args.replay else make_engine(url)
    profile = cProfile.Profile()
    if not loaded:  # a database the harness filled before is read again as it is
        payloads = bundles(args.events, args.days)
        held = HeldCounters(settings.aggregator_rebuild_held_keys) if args.replay else None
        handler = ApplyBatch(engine, rules(settings), lambda _changed: None, held)
        if args.profile == "load":
            profile.enable()
        if args.replay:
            async with read_indexes_deferred(engine):
                print("replay", await load(handler, payloads, args.batch, handler.write_held))
        else:
            print("load", await load(handler, payloads, args.batch))
        profile.disable()
    if args.reads:
        app, secret = read_app(settings, engine, fast=not args.fastapi_route)
        await reads(app, secret, 20)  # warm the statement caches
        if args.profile == "reads":
            profile.enable()
        print("reads", await reads(app, secret, args.reads))
        profile.disable()
    await engine.dispose()
    if args.profile:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats("zhibao", 25)


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--days", type=float, default=400)
    parser.add_argument("--batch", type=int, default=500, help="events per handler call")
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--aiosqlite", action="store_true", help="no direct SQLite connections")
    parser.add_argument(
        "--fastapi-route", action="store_true", help="reads through FastAPI, not the fast path"
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="load as a rebuild does (its engine, indexes deferred; pass its --batch too)",
    )
    parser.add_argument(
        "--dir", help="where the database goes (default: a new temp dir; an existing one is reused)"
    )
    parser.add_argument("--profile", choices=("load", "reads"))
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
