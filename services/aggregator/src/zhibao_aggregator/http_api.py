"""The aggregator's HTTP API (read only): units, rollups, series, completeness, reports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from zhibao_aggregator import report
from zhibao_aggregator.public_summary import NotPublic, NotReleased, PublicSummaries
from zhibao_aggregator.quality_reader import QualityReader
from zhibao_aggregator.reader import SERIES_METRICS, RollupReader, UnknownUnit
from zhibao_shared.events import readable_days
from zhibao_shared.hierarchy import CODE_PREFIX
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import unprocessable
from zhibao_shared.tokens import Role

MAX_SERIES_DAYS = 400

DateQuery = Annotated[date | None, Query(description="Day (YYYY-MM-DD, district time); today")]


def readable(day: date, name: str, today: date) -> date:
    """``day`` if the read API answers for it, else a 422 naming the parameter and the range
    (:func:`zhibao_shared.events.readable_days`: no data is dated outside it)."""
    first, last = readable_days(today)
    if not first <= day <= last:
        raise unprocessable(("query", name), f"must lie between {first} and {last}")
    return day


def reading_day(reader: RollupReader, day: date | None) -> date:
    """``day`` if readable (else a 422), or today in the district's calendar."""
    today = reader.calendar.today(datetime.now(UTC))
    return today if day is None else readable(day, "date", today)


async def rollup_of(reader: RollupReader, code: str, day: date | None) -> dict[str, Any]:
    """The answer of ``GET /v1/units/{code}/rollup`` (also given by :mod:`read_fastpath`)."""
    found = reading_day(reader, day)
    return {
        "unit": code,
        "date": found.isoformat(),
        "figures": await reader.figures(code, found),
        "grid_workload": reader.grid_workload(code),
    }


def add_error_handlers(app: FastAPI) -> None:
    """Unknown units (and units without a public summary there) answer 404 with the code named."""

    async def unknown(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"unknown unit {exc.args[0]}"}, status_code=404)

    async def not_public(_request: Request, exc: Exception) -> JSONResponse:
        detail = f"no public summary for unit {exc.args[0]} (below the public level)"
        return JSONResponse({"detail": detail}, status_code=404)

    async def not_released(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"no public release: {exc.args[0]}"}, status_code=404)

    app.add_exception_handler(UnknownUnit, unknown)
    app.add_exception_handler(NotPublic, not_public)
    app.add_exception_handler(NotReleased, not_released)


def build_router(reader: RollupReader, auth: TokenAuth) -> APIRouter:
    """Routes under ``/v1/units``; each needs a read token whose scope covers the unit."""
    router = APIRouter(
        prefix="/v1/units",
        tags=["rollups"],
        dependencies=[Depends(auth.unit_scope(Role.READ))],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "The token does not cover this unit"},
        },
    )

    def day_or_today(day: date | None) -> date:
        return reading_day(reader, day)

    @router.get("/{code}", summary="A unit, its parent and its children")
    async def unit(code: str) -> dict[str, Any]:
        return reader.describe(code)

    @router.get("/{code}/rollup", summary="All metrics of a unit for a day")
    async def rollup(code: str, date: DateQuery = None) -> dict[str, Any]:
        return await rollup_of(reader, code, date)

    @router.get("/{code}/children", summary="All metrics of each child unit for a day")
    async def children(code: str, date: DateQuery = None) -> dict[str, Any]:
        day = day_or_today(date)
        rows = await reader.children(code, day)
        return {
            "unit": code,
            "date": day.isoformat(),
            "children": [
                {
                    "code": u.code,
                    "name": u.name,
                    "figures": f,
                    "grid_workload": reader.grid_workload(u.code),
                }
                for u, f in rows
            ],
        }

    @router.get("/{code}/series", summary="A daily series of one metric")
    async def series(
        code: str,
        metric: str,
        first: Annotated[date, Query(alias="from")],
        last: Annotated[date, Query(alias="to")],
    ) -> dict[str, Any]:
        if metric not in SERIES_METRICS:
            raise unprocessable(
                ("query", "metric"), f"unknown metric {metric!r}; one of {sorted(SERIES_METRICS)}"
            )
        today = reader.calendar.today(datetime.now(UTC))
        first, last = readable(first, "from", today), readable(last, "to", today)
        if last < first or last - first > timedelta(days=MAX_SERIES_DAYS):
            raise unprocessable(
                ("query", "to"), f"need from <= to, at most {MAX_SERIES_DAYS} days apart"
            )
        points = await reader.series(code, metric, first, last)
        return {
            "unit": code,
            "metric": metric,
            "points": [{"date": d.isoformat(), "value": v} for d, v in points.items()],
        }

    @router.get("/{code}/points", summary="Epidemic points under the unit and their lifting")
    async def points(code: str, date: DateQuery = None) -> dict[str, Any]:
        day = day_or_today(date)
        return {"unit": code, "date": day.isoformat(), "points": await reader.points(code, day)}

    @router.get(
        "/{code}/isolation-releases",
        summary="Persons in isolation by planned release day and kind; overdue isolations",
    )
    async def isolation_releases(
        code: str,
        first: Annotated[date | None, Query(alias="from", description="Today by default")] = None,
        last: Annotated[date | None, Query(alias="to", description="From + 13 days")] = None,
    ) -> dict[str, Any]:
        today = reader.calendar.today(datetime.now(UTC))
        first = today if first is None else readable(first, "from", today)
        last = first + timedelta(days=13) if last is None else readable(last, "to", today)
        if last < first or last - first > timedelta(days=MAX_SERIES_DAYS):
            raise unprocessable(
                ("query", "to"), f"need from <= to, at most {MAX_SERIES_DAYS} days apart"
            )
        return await reader.isolation_releases(code, first, last)

    @router.get("/{code}/completeness", summary="Communities that reported, late or not at all")
    async def completeness(code: str, date: DateQuery = None) -> dict[str, Any]:
        return await reader.completeness(code, day_or_today(date))

    @router.get(
        "/{code}/tasks/overdue",
        summary="Overdue tasks under a unit, per street (ids, communities, kinds, due times)",
    )
    async def overdue_tasks(code: str, date: DateQuery = None) -> dict[str, Any]:
        return await reader.overdue_tasks(code, day_or_today(date))

    async def report_rows(code: str, day: date) -> list[report.Row]:
        own = reader.unit(code)
        rows = [(u.code, u.name, f) for u, f in await reader.children(code, day)]
        return [*rows, (own.code, f"{own.name} 合计 total", await reader.figures(code, day))]

    @router.get("/{code}/report.csv", summary="The daily statistical report as CSV")
    async def report_csv(code: str, date: DateQuery = None) -> Response:
        day = day_or_today(date)
        body = report.as_csv(await report_rows(code, day))
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{code}-{day}.csv"'},
        )

    @router.get("/{code}/report.xlsx", summary="The daily statistical report as Excel")
    async def report_xlsx(code: str, date: DateQuery = None) -> Response:
        day = day_or_today(date)
        body = report.as_xlsx(await report_rows(code, day), f"{code} {day}")
        return Response(
            body,
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{code}-{day}.xlsx"'},
        )

    return router


#: The scorecard's default period: the last QUALITY_DEFAULT_DAYS days up to ``to``.
QUALITY_DEFAULT_DAYS = 7
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FromQuery = Annotated[
    date | None, Query(alias="from", description="First day (district time); to - 6 days")
]
ToQuery = Annotated[date | None, Query(alias="to", description="Last day (district time); today")]


def build_quality_router(quality: QualityReader, auth: TokenAuth) -> APIRouter:
    """``/v1/units/{code}/quality[.csv|.xlsx]``: the data-quality and timeliness scorecard
    (read tokens whose scope covers the unit, like every unit route)."""
    router = APIRouter(
        prefix="/v1/units",
        tags=["quality"],
        dependencies=[Depends(auth.unit_scope(Role.READ))],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "The token does not cover this unit"},
            404: {"description": "Unknown unit"},
        },
    )

    def period(first: date | None, last: date | None) -> tuple[date, date]:
        today = quality.calendar.today(datetime.now(UTC))
        last = today if last is None else readable(last, "to", today)
        if first is None:
            earliest = readable_days(today)[0]
            first = max(earliest, last - timedelta(days=QUALITY_DEFAULT_DAYS - 1))
        first = readable(first, "from", today)
        if last < first or last - first > timedelta(days=MAX_SERIES_DAYS):
            raise unprocessable(
                ("query", "to"), f"need from <= to, at most {MAX_SERIES_DAYS} days apart"
            )
        return first, last

    @router.get("/{code}/quality", summary="Data-quality and timeliness scorecard of a unit")
    async def scorecard(
        code: str,
        first: FromQuery = None,
        last: ToQuery = None,
    ) -> dict[str, Any]:
        return await quality.scorecard(code, *period(first, last))

    @router.get("/{code}/quality.csv", summary="The scorecard as CSV (the unit and its children)")
    async def scorecard_csv(
        code: str,
        first: FromQuery = None,
        last: ToQuery = None,
    ) -> Response:
        first, last = period(first, last)
        body = report.quality_as_csv(await quality.scorecard(code, first, last))
        name = f"{code}-quality-{first}-{last}.csv"
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @router.get("/{code}/quality.xlsx", summary="The scorecard as Excel")
    async def scorecard_xlsx(
        code: str,
        first: FromQuery = None,
        last: ToQuery = None,
    ) -> Response:
        first, last = period(first, last)
        body = report.quality_as_xlsx(await quality.scorecard(code, first, last))
        name = f"{code}-quality-{first}-{last}.xlsx"
        return Response(
            body,
            media_type=XLSX_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return router


class PublicCount(BaseModel):
    """A count as the public sees it: ``value`` is null when ``suppressed``."""

    value: int | None
    suppressed: bool


class PublicUnit(BaseModel):
    """A unit's released figures: counts, days without a new case, the risk level."""

    code: str
    name: str
    name_en: str
    level: str
    figures: dict[str, PublicCount | int | str | None]


class PublicSummary(PublicUnit):
    """A unit's and its public children's figures of one daily release."""

    date: date
    released_at: datetime
    threshold: int = Field(description="Counts from 1 to threshold − 1 are never shown")
    children: list[PublicUnit]


ReleaseDateQuery = Annotated[
    date | None, Query(description="Day (YYYY-MM-DD) of a past release; the latest by default")
]


def build_public_router(summaries: PublicSummaries) -> APIRouter:
    """``/v1/public/...``: token-less daily releases with small counts suppressed."""
    router = APIRouter(prefix="/v1/public", tags=["public"])

    @router.get(
        "/units/{code}/summary",
        summary="Released public figures of a unit (daily, small counts suppressed)",
        response_model=PublicSummary,
        responses={
            404: {"description": "Unknown unit, no public summary at its level, or not released"}
        },
    )
    async def public_summary(
        code: Annotated[str, PathParam(pattern=CODE_PREFIX)], date: ReleaseDateQuery = None
    ) -> dict[str, Any]:
        if date is not None:
            date = readable(date, "date", summaries.reader.calendar.today(datetime.now(UTC)))
        return await summaries.summary(code, date)

    return router
