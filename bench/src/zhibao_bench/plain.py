"""The plain baseline: the service a district would write without Zhibao.

FastAPI and asyncpg, one process: every report is one INSERT into one
PostgreSQL table, all of a request's in one transaction (a report is visible
once its request is answered), and a rollup is computed on read with GROUP
BY over the reports. A yardstick for the benchmark, not a product: no
pseudonym key, no alerts, no bus, a single token.

Run as ``python -m zhibao_bench.plain`` with ``PLAIN_DSN``, ``PLAIN_PORT`` and
``PLAIN_TOKEN`` set.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from zhibao_bench.workload import local_day

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    community text NOT NULL,
    source text NOT NULL,
    id text NOT NULL,
    type text NOT NULL,
    time timestamptz NOT NULL,
    day date NOT NULL,
    temperature_c real,
    site text,
    travel boolean,
    person text,
    classification text,
    action text,
    PRIMARY KEY (community, source, id)
);
CREATE INDEX IF NOT EXISTS reports_day ON reports (day, community);
CREATE INDEX IF NOT EXISTS reports_person ON reports (person, time) WHERE person IS NOT NULL;
"""

COLUMNS = (
    "community",
    "source",
    "id",
    "type",
    "time",
    "day",
    "temperature_c",
    "site",
    "travel",
    "person",
    "classification",
    "action",
)
INSERT = """
INSERT INTO reports (community, source, id, type, time, day, temperature_c, site, travel,
                     person, classification, action)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT DO NOTHING
"""
FLOWS = """
SELECT type, site, count(*) AS n,
       count(*) FILTER (WHERE temperature_c >= 37.3) AS fevers,
       count(*) FILTER (WHERE travel) AS travel
FROM reports WHERE day = $2 AND community LIKE $1 || '%'
GROUP BY type, site
"""
CURRENT_CASES = """
SELECT classification, count(*) FROM (
    SELECT DISTINCT ON (person) classification FROM reports
    WHERE type = 'zhibao.case.v1' AND community LIKE $1 || '%' AND day <= $2
    ORDER BY person, time DESC
) latest GROUP BY classification
"""
IN_ISOLATION = """
SELECT count(*) FROM (
    SELECT DISTINCT ON (person) action FROM reports
    WHERE type = 'zhibao.isolation.v1' AND action IN ('start', 'end')
      AND community LIKE $1 || '%' AND day <= $2
    ORDER BY person, time DESC
) latest WHERE action = 'start'
"""

Row = tuple[Any, ...]


def row(event: dict[str, Any]) -> Row:
    """One report as a table row (the resident ID hashed, as any service would)."""
    data = event["data"]
    when = datetime.fromisoformat(event["time"])
    person = data.get("person")
    pid = hashlib.sha256(json.dumps(person).encode()).hexdigest()[:32] if person else None
    return (
        event["subject"],
        event["source"],
        event["id"],
        event["type"],
        when,
        local_day(when),
        data.get("temperature_c"),
        data.get("site"),
        data.get("travel_from_risk_area"),
        pid,
        data.get("classification"),
        data.get("action"),
    )


def build_app(dsn: str, token: str) -> FastAPI:
    """The plain service: POST /v1/events, GET /v1/units/{code}/rollup."""
    pool: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool["db"] = await asyncpg.create_pool(dsn, min_size=4, max_size=16)
        async with pool["db"].acquire() as conn:
            await conn.execute(SCHEMA)
        yield
        await pool["db"].close()

    app = FastAPI(lifespan=lifespan)

    def authorised(authorization: str | None) -> None:
        if authorization != f"Bearer {token}":
            raise HTTPException(401, "no or unknown token")

    @app.post("/v1/events", status_code=202)
    async def events(request: Request, authorization: str | None = Header(None)) -> JSONResponse:
        authorised(authorization)
        body = json.loads(await request.body())
        try:
            rows = [row(e) for e in (body if isinstance(body, list) else [body])]
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPException(422, f"bad event: {exc!r}") from None
        async with pool["db"].acquire() as conn, conn.transaction():
            await conn.executemany(INSERT, rows)
        return JSONResponse({"accepted": len(rows)}, status_code=202)

    @app.get("/v1/units/{code}/rollup")
    async def rollup(
        code: str,
        day: Annotated[date | None, Query(alias="date")] = None,
        authorization: str | None = Header(None),
    ) -> dict[str, Any]:
        authorised(authorization)
        day = day or local_day(datetime.now().astimezone())
        async with pool["db"].acquire() as conn:
            flows = await conn.fetch(FLOWS, code, day)
            cases = await conn.fetch(CURRENT_CASES, code, day)
            isolated = await conn.fetchval(IN_ISOLATION, code, day)
        return {"unit": code, "date": day.isoformat(), "figures": _figures(flows, cases, isolated)}

    return app


def _figures(flows: list[Any], cases: list[Any], isolated: int) -> dict[str, int]:
    out: dict[str, int] = {"events": 0, "screenings": 0, "fevers": 0, "travel_flagged": 0}
    for r in flows:
        out["events"] += r["n"]
        if r["type"] == "zhibao.screening.v1":
            out["screenings"] += r["n"]
            out[f"screenings_{r['site']}"] = r["n"]
            out["fevers"] += r["fevers"]
            out["travel_flagged"] += r["travel"]
    for classification, count in cases:
        out[f"current_{classification}"] = count
    out["in_isolation"] = isolated
    return out


def main() -> None:
    """Serve the plain baseline on 127.0.0.1:$PLAIN_PORT."""
    app = build_app(os.environ["PLAIN_DSN"], os.environ["PLAIN_TOKEN"])
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PLAIN_PORT"]), log_level="warning")


if __name__ == "__main__":
    main()
