"""Report templates: defined once (a file or the API), every unit's copy fills itself from
the rollups, laid out as the template says (title, headings, a row per unit, totals)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream.nats import NatsBroker
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from tests.aggregator.generator import Scenario, day_of, generate
from tests.aggregator.harness import consume, publish
from zhibao_aggregator.bootstrap import create_app, reader, rebuild, template_files
from zhibao_aggregator.cli import app as aggregator_cli
from zhibao_aggregator.domain.templates import FIGURES
from zhibao_aggregator.http_api import add_error_handlers, build_router
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.templates import report_templates
from zhibao_aggregator.template_files import TemplateFileError
from zhibao_aggregator.templates_api import build_templates_router, build_unit_templates_router
from zhibao_aggregator.templates_catalogue import TemplateCatalogue
from zhibao_shared.audit import AuditTrail
from zhibao_shared.db import make_engine
from zhibao_shared.hierarchy import Level, load_registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import Role, TokenStore

STREET, DISTRICT = "640106001", "640106"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Service:
    """The aggregator's read routes and template routes over one database."""

    app: FastAPI
    tokens: TokenStore

    def client(self, scope: str, role: Role = Role.READ) -> httpx.AsyncClient:
        secret = self.tokens.create(scopes=[scope], role=role)[1]
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://t",
            headers={"authorization": f"Bearer {secret}"},
        )


def service(engine: AsyncEngine, settings: AggregatorSettings) -> Service:
    """The routes as ``create_app`` wires them (the templates of ``settings``)."""
    tokens = TokenStore.in_data_dir(settings.data_dir)
    auth = TokenAuth(tokens)
    read_side = reader(settings, engine)
    catalogue = TemplateCatalogue(engine, template_files(settings, read_side.registry))
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(build_router(read_side, auth))
    # not started: the records of created templates stay in its buffer
    audit = AuditTrail(NatsBroker("nats://127.0.0.1:1"), 1.0, "aggregator")
    app.include_router(build_templates_router(catalogue, read_side, auth, audit))
    app.include_router(build_unit_templates_router(catalogue, read_side, auth))
    return Service(app, tokens)


@pytest.fixture
async def counted(
    nats_server: NatsServer, settings: AggregatorSettings
) -> AsyncIterator[tuple[AsyncEngine, Scenario]]:
    """A seeded scenario published on a real nats-server and counted into SQLite."""
    scenario = generate(seed=16, screenings=700, persons=70, isolated=40)
    await publish(nats_server.url, scenario, settings)
    await migrate(settings.database_url())
    engine = make_engine(settings.database_url())
    await consume(nats_server.url, engine, settings)
    yield engine, scenario
    await engine.dispose()


def busiest_day(scenario: Scenario, prefix: str) -> date:
    """The day with the most events under ``prefix`` (a table worth checking)."""
    days = Counter(day_of(e.time) for e in scenario.unique if e.subject.startswith(prefix))
    return days.most_common(1)[0][0]


def sheet_of(body: bytes) -> Worksheet:
    book = load_workbook(io.BytesIO(body))
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    return sheet


def rows_of(sheet: Worksheet) -> list[list[Any]]:
    return [list(row) for row in sheet.iter_rows(values_only=True)]


async def test_a_street_daily_table_gives_the_figures_of_the_rollup_api(
    counted: tuple[AsyncEngine, Scenario], settings: AggregatorSettings
) -> None:
    engine, scenario = counted
    day = busiest_day(scenario, STREET)
    template = template_files(settings, load_registry())["street-daily"]
    async with service(engine, settings).client(STREET) as client:
        answer = await client.get(f"/v1/units/{STREET}/templates/street-daily.xlsx?date={day}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == XLSX_TYPE
        assert f"street-daily-{STREET}-{day}.xlsx" in answer.headers["content-disposition"]
        children = (await client.get(f"/v1/units/{STREET}/children?date={day}")).json()
        own = (await client.get(f"/v1/units/{STREET}/rollup?date={day}")).json()["figures"]
        as_csv = await client.get(f"/v1/units/{STREET}/templates/street-daily.csv?date={day}")
    sheet = sheet_of(answer.content)
    rows = rows_of(sheet)
    title = f"黄河东路街道疫情防控日报表（{day.year}年{day.month}月{day.day}日）"
    assert rows[0][0] == title and all(cell is None for cell in rows[0][1:])
    assert [str(r) for r in sheet.merged_cells.ranges] == ["A1:N1"]  # over all 14 columns
    headings = ["社区", *(c.heading for c in template.columns)]
    assert rows[1] == headings
    assert rows[1][1:4] == ["排查人次", "发热人数", "中高风险地区来（返）人员"]
    figures = [c.figure for c in template.columns]
    expected = [[c["name"], *(c["figures"][f] for f in figures)] for c in children["children"]]
    assert [r[0] for r in rows[2:-1]] == [u.name for u in load_registry().children(STREET)]
    assert rows[2:-1] == expected
    assert rows[-1] == ["全街道合计", *(own[f] for f in figures)]
    assert sum(own[f] for f in ("screenings", "in_isolation")) > 0  # a table with figures
    assert sheet.cell(2, 1).font.b and sheet.cell(len(rows), 1).font.b
    parsed = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert parsed[0] == [title] and parsed[1] == headings
    assert parsed[2:] == [[str(v) for v in row] for row in rows[2:]]


async def test_a_range_adds_up_what_happened_and_takes_levels_on_its_last_day(
    counted: tuple[AsyncEngine, Scenario], settings: AggregatorSettings
) -> None:
    engine, scenario = counted
    last = busiest_day(scenario, DISTRICT)
    first = last - timedelta(days=6)
    template = template_files(settings, load_registry())["district-weekly"]
    figures = [c.figure for c in template.columns]
    async with service(engine, settings).client(DISTRICT) as client:
        url = f"/v1/units/{DISTRICT}/templates/district-weekly.xlsx?from={first}&to={last}"
        rows = rows_of(sheet_of((await client.get(url)).content))
        daily = [
            (await client.get(f"/v1/units/{DISTRICT}/rollup?date={first + timedelta(n)}")).json()
            for n in range(7)
        ]
    assert rows[0][0] == f"金凤区疫情防控周报表（{first.year}年{first.month}月{first.day}日至" + (
        f"{last.year}年{last.month}月{last.day}日）"
    )
    assert rows[1][:3] == ["区划代码", "社区", "排查人次"]
    communities = load_registry().communities_under(DISTRICT)
    assert [r[0] for r in rows[2:-1]] == [u.code for u in communities]  # registry order
    totals = dict(zip(figures, rows[-1][2:], strict=True))
    assert rows[-1][:2] == [DISTRICT, "全区合计"]
    for summed in ("screenings", "fevers", "new_confirmed", "reports_missing", "tasks_done"):
        assert totals[summed] == sum(d["figures"][summed] for d in daily), summed
    for level in ("current_confirmed", "in_isolation", "risk_level", "tasks_overdue"):
        assert totals[level] == daily[-1]["figures"][level], level
    assert totals["screenings"] == sum(r[2] for r in rows[2:-1])


async def test_the_period_defaults_to_the_templates_and_the_unit_must_fit_the_template(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    today = reader(settings, sqlite_engine).calendar.today(datetime.now(UTC))
    yesterday = today - timedelta(days=1)
    async with service(sqlite_engine, settings).client(DISTRICT) as client:
        answer = await client.get(f"/v1/units/{STREET}/templates/street-daily.csv")
        assert answer.status_code == 200
        assert f"（{yesterday.year}年{yesterday.month}月{yesterday.day}日）" in answer.text
        # the street's table is filled for streets only; the district's for its district
        wrong = await client.get(f"/v1/units/{DISTRICT}/templates/street-daily.xlsx")
        assert wrong.status_code == 422 and "filled for a street" in wrong.text
        community = await client.get(f"/v1/units/{STREET}001/templates/district-isolation.csv")
        assert community.status_code == 422
        unknown = await client.get(f"/v1/units/{STREET}/templates/nope.xlsx")
        assert unknown.status_code == 404
        half = await client.get(f"/v1/units/{STREET}/templates/street-daily.csv?from={today}")
        assert half.status_code == 422
        fillable = (await client.get(f"/v1/units/{STREET}/templates")).json()["templates"]
        assert [t["id"] for t in fillable] == ["street-daily"]
    async with service(sqlite_engine, settings).client(STREET) as client:
        neighbour = await client.get("/v1/units/640106002/templates/street-daily.xlsx")
        assert neighbour.status_code == 403


def write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")


GOOD = """
title: "{unit}发热门诊日报"
rows: community
columns:
  - {figure: fevers, heading: 发热人数}
"""


def test_a_bad_template_file_is_refused_naming_the_file_and_the_field(
    settings: AggregatorSettings, tmp_path: Path
) -> None:
    directory = tmp_path / "templates"
    write(directory, "fever-clinic.yaml", GOOD)
    write(
        directory,
        "weekly.yaml",
        'title: "{unit}周报"\nrows: street\nperiod: {last_days: 400}\n'
        "columns:\n  - {figure: screenings, heading: 排查}\n  - {figure: fever, heading: 发热}\n",
    )
    write(directory, "owner.yml", GOOD + 'unit: "640199"\n')
    configured = settings.model_copy(update={"aggregator_templates_dir": directory})
    with pytest.raises(TemplateFileError) as refused:
        template_files(configured, load_registry())
    assert refused.value.problems == [
        "owner.yml: unit: unknown unit 640199",
        "weekly.yaml: period.last_days: Input should be less than or equal to 92",
        "weekly.yaml: columns[1].figure: unknown figure 'fever'; a rollup figure such as "
        "screenings, fevers, new_confirmed, in_isolation (all: GET /v1/templates/figures)",
    ]
    with pytest.raises(TemplateFileError):  # the service refuses to start with them
        create_app(configured)
    result = CliRunner().invoke(aggregator_cli, ["check-templates", str(directory)])
    assert result.exit_code == 1
    assert "weekly.yaml: columns[1].figure: unknown figure 'fever'" in result.output
    (directory / "weekly.yaml").unlink()
    (directory / "owner.yml").unlink()
    result = CliRunner().invoke(aggregator_cli, ["check-templates", str(directory)])
    assert result.exit_code == 0 and "1 template(s) valid" in result.output
    assert list(template_files(configured, load_registry())) == ["fever-clinic"]


def test_every_figure_a_template_may_name_is_in_the_rollup() -> None:
    assert {"screenings", "fevers", "new_confirmed", "in_isolation", "tasks_done"} <= FIGURES


async def test_template_figures_are_the_rollup_apis_names(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    figures = await reader(settings, sqlite_engine).figures(STREET, date.today())
    assert set(figures) >= FIGURES


ISOLATION_TABLE: dict[str, Any] = {
    "id": "street-isolation",
    "title": "{unit}居家隔离日报（{date}）",
    "rows": "community",
    "for": "street",
    "period": "today",
    "name_heading": "社区名称",
    "columns": [
        {"figure": "in_isolation", "heading": "居家隔离人数"},
        {"figure": "isolation_checks", "heading": "上门测温人次"},
    ],
}


async def test_an_api_created_template_is_stored_scoped_and_kept_on_sqlite(
    settings: AggregatorSettings,
) -> None:
    await _stored_scoped_and_kept(settings)


async def test_an_api_created_template_is_stored_scoped_and_kept_on_postgresql(
    settings: AggregatorSettings, postgres_url: str
) -> None:
    await _stored_scoped_and_kept(
        settings.model_copy(update={"aggregator_database_url": postgres_url})
    )


async def _stored_scoped_and_kept(settings: AggregatorSettings) -> None:
    await migrate(settings.database_url())
    engine = make_engine(settings.database_url())
    try:
        await _create_and_scope(service(engine, settings))
        # another instance (or a restart) over the same database sees it
        async with service(engine, settings).client(STREET) as client:
            listed = (await client.get("/v1/templates")).json()["templates"]
            assert "street-isolation" in [t["id"] for t in listed]
            filled = await client.get(f"/v1/units/{STREET}/templates/street-isolation.xlsx")
        rows = rows_of(sheet_of(filled.content))
        assert rows[1] == ["社区名称", "居家隔离人数", "上门测温人次"]
        assert len(rows) == 2 + 10 + 1
    finally:
        await engine.dispose()


async def _create_and_scope(api: Service) -> None:
    async with api.client(DISTRICT, Role.OPERATE) as district:
        created = await district.post("/v1/templates", json=ISOLATION_TABLE)
        assert created.status_code == 201, created.text
        assert created.json()["unit"] == DISTRICT and created.json()["source"] == "api"
        again = await district.post("/v1/templates", json=ISOLATION_TABLE)
        assert again.status_code == 409
        shadowing = await district.post(
            "/v1/templates", json={**ISOLATION_TABLE, "id": "street-daily"}
        )
        assert shadowing.status_code == 409
        bad = await district.post(
            "/v1/templates",
            json={**ISOLATION_TABLE, "id": "x", "columns": [{"figure": "fever", "heading": "a"}]},
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "columns", 0, "figure"]
        foreign = await district.post(
            "/v1/templates", json={**ISOLATION_TABLE, "id": "y", "unit": "640107"}
        )
        assert foreign.status_code == 403
    async with api.client(DISTRICT) as reader_only:
        refused = await reader_only.post("/v1/templates", json={**ISOLATION_TABLE, "id": "z"})
        assert refused.status_code == 403
    async with api.client("640107") as other_district:
        listed = (await other_district.get("/v1/templates")).json()["templates"]
        assert "street-isolation" not in [t["id"] for t in listed]
        assert (await other_district.get("/v1/templates/street-isolation")).status_code == 404
    async with api.client(STREET) as street:
        one = (await street.get("/v1/templates/street-isolation")).json()
        assert one["for"] == "street" and one["created_by"]
    async with api.client(DISTRICT, Role.OPERATE) as district:
        mine = {**ISOLATION_TABLE, "id": "one-street", "unit": STREET}
        assert (await district.post("/v1/templates", json=mine)).status_code == 201
        # a street's own table: not the neighbouring street's, whoever asks
        other = await district.get("/v1/units/640106002/templates/one-street.csv")
        assert other.status_code == 404
        assert (await district.get(f"/v1/units/{STREET}/templates/one-street.csv")).is_success
    async with api.client("640106002") as neighbour:
        listed = (await neighbour.get("/v1/templates")).json()["templates"]
        assert "one-street" not in [t["id"] for t in listed]
        assert "street-isolation" in [t["id"] for t in listed]


@pytest.mark.integration
async def test_a_rebuild_keeps_the_templates_created_through_the_api(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = AggregatorSettings(data_dir=tmp_path / "d", nats_url=nats_server.url)
    await publish(nats_server.url, generate(seed=4, screenings=20, persons=2, isolated=1), settings)
    await rebuild(settings)
    engine = make_engine(settings.database_url())
    try:
        async with service(engine, settings).client(DISTRICT, Role.OPERATE) as client:
            assert (await client.post("/v1/templates", json=ISOLATION_TABLE)).status_code == 201
        await rebuild(settings, force=True)
        async with service(engine, settings).client(DISTRICT) as client:
            listed = (await client.get("/v1/templates")).json()["templates"]
        assert "street-isolation" in [t["id"] for t in listed]
    finally:
        await engine.dispose()


def test_the_sample_templates_fill_for_the_levels_they_name() -> None:
    found = template_files(AggregatorSettings(_env_file=None), load_registry())
    assert sorted(found) == ["district-isolation", "district-weekly", "street-daily"]
    assert found["street-daily"].for_level is Level.STREET
    assert found["district-isolation"].unit == DISTRICT


async def test_a_stored_template_this_version_no_longer_accepts_is_left_out_not_a_500(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    stale = {**ISOLATION_TABLE, "id": "stale", "unit": DISTRICT}
    stale["columns"] = [{"figure": "renamed_figure", "heading": "旧指标"}]
    async with sqlite_engine.begin() as conn:
        await conn.execute(
            report_templates.insert().values(
                id="stale",
                unit=DISTRICT,
                body=json.dumps(stale),
                created_at=datetime.now(UTC),
                created_by="t",
            )
        )
    async with service(sqlite_engine, settings).client(DISTRICT) as client:
        listed = await client.get("/v1/templates")
        assert listed.status_code == 200
        assert "stale" not in [t["id"] for t in listed.json()["templates"]]
        missing = await client.get(f"/v1/units/{STREET}/templates/stale.xlsx")
        assert missing.status_code == 404


async def store_as_an_old_version_did(engine: AsyncEngine, template: dict[str, Any]) -> None:
    """A template in the database as a version before today's rules stored it (unchecked)."""
    async with engine.begin() as conn:
        await conn.execute(
            report_templates.insert().values(
                id=template["id"],
                unit=template.get("unit"),
                body=json.dumps(template, ensure_ascii=False),
                created_at=datetime.now(UTC),
                created_by="t",
            )
        )


async def test_a_title_takes_bare_placeholders_only_and_no_text_begins_like_a_formula(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    async with service(sqlite_engine, settings).client(DISTRICT, Role.OPERATE) as district:
        # str.format would pad {unit:>500000000} to 500 MB at every fill
        for title in ("{unit:>500000000}", "{unit!r}报表", "{unit.x}", "{date[0]}", "{unit:{x}}"):
            refused = await district.post("/v1/templates", json={**ISOLATION_TABLE, "title": title})
            assert refused.status_code == 422, (title, refused.text)
            (problem,) = refused.json()["detail"]
            assert problem["loc"] == ["body", "title"], title
            assert "{code}, {date}, {unit}" in problem["msg"] and "bare" in problem["msg"]
        unknown = await district.post("/v1/templates", json={**ISOLATION_TABLE, "title": "{name}"})
        assert "unknown placeholder {name}" in unknown.json()["detail"][0]["msg"]
        formulas: dict[tuple[str | int, ...], dict[str, Any]] = {
            ("title",): {"title": '=HYPERLINK("http://evil.example","{unit}")'},
            ("name_heading",): {"name_heading": "+社区"},
            ("totals_label",): {"totals_label": "@SUM(A1)"},
            ("columns", 0, "heading"): {"columns": [{"figure": "fevers", "heading": "-2+3"}]},
        }
        for field, change in formulas.items():
            refused = await district.post("/v1/templates", json={**ISOLATION_TABLE, **change})
            assert refused.status_code == 422, (field, refused.text)
            assert refused.json()["detail"][0]["loc"] == ["body", *field]
            assert "formula" in refused.json()["detail"][0]["msg"]
        listed = (await district.get("/v1/templates")).json()["templates"]
        assert "street-isolation" not in [t["id"] for t in listed]
        # braces written double stay a brace, as they always did
        braces = {**ISOLATION_TABLE, "title": "{unit}{{内部}}（{date}）"}
        assert (await district.post("/v1/templates", json=braces)).status_code == 201
        filled = await district.get(f"/v1/units/{STREET}/templates/street-isolation.csv")
    assert filled.text.removeprefix("\ufeff").startswith("黄河东路街道{内部}（")


async def test_a_stored_title_with_a_format_spec_is_listed_and_filled_literally(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    padded = "{unit:>3000000}（{date}）"  # 3 MB of spaces at each fill through str.format
    old = {**ISOLATION_TABLE, "id": "padded", "unit": DISTRICT, "title": padded}
    await store_as_an_old_version_did(sqlite_engine, old)
    async with service(sqlite_engine, settings).client(DISTRICT) as client:
        listed = await client.get("/v1/templates")
        assert listed.status_code == 200
        (entry,) = [t for t in listed.json()["templates"] if t["id"] == "padded"]
        assert entry["title"] == padded
        as_csv = await client.get(f"/v1/units/{STREET}/templates/padded.csv")
        as_xlsx = await client.get(f"/v1/units/{STREET}/templates/padded.xlsx")
    assert as_csv.status_code == 200 and as_xlsx.status_code == 200
    assert len(as_csv.content) < 10_000 and len(as_xlsx.content) < 10_000
    title = next(csv.reader(io.StringIO(as_csv.text.removeprefix("\ufeff"))))[0]
    assert title.startswith("{unit:>3000000}（") and len(title) < 100
    assert rows_of(sheet_of(as_xlsx.content))[0][0] == title


#: What a street operator once stored (before texts beginning like a formula were refused).
FORMULAS: dict[str, Any] = {
    **ISOLATION_TABLE,
    "id": "formulas",
    "unit": DISTRICT,
    "title": '=HYPERLINK("http://evil.example/login","{unit}点此查看详情")',
    "name_heading": "+社区",
    "columns": [
        {"figure": "in_isolation", "heading": "=cmd|' /C calc'!A0"},
        {"figure": "isolation_checks", "heading": "-2+3"},
    ],
    "totals_label": "@SUM(1+1)*cmd|' /C calc'!A0",
}
FORMULAS_HEADINGS = [c["heading"] for c in FORMULAS["columns"]]


async def test_template_texts_beginning_like_a_formula_are_text_cells_in_xlsx(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    await store_as_an_old_version_did(sqlite_engine, FORMULAS)
    async with service(sqlite_engine, settings).client(DISTRICT) as client:
        answer = await client.get(f"/v1/units/{STREET}/templates/formulas.xlsx")
    assert answer.status_code == 200, answer.text
    sheet = sheet_of(answer.content)
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    texts = {c.coordinate: c.value for c in cells if c.data_type == "s"}
    assert texts["A1"] == '=HYPERLINK("http://evil.example/login","黄河东路街道点此查看详情")'
    assert [texts["A2"], texts["B2"], texts["C2"]] == ["+社区", *FORMULAS_HEADINGS]
    assert texts[f"A{sheet.max_row}"] == FORMULAS["totals_label"]
    assert all(sheet[name].quotePrefix for name in ("A1", "A2", "B2", "C2"))
    figures = [c for c in cells if c.column > 1 and c.row > 2]
    assert figures and all(c.data_type == "n" for c in figures)  # figures stay numbers


async def test_template_texts_beginning_like_a_formula_are_quoted_in_csv(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    await store_as_an_old_version_did(sqlite_engine, FORMULAS)
    async with service(sqlite_engine, settings).client(DISTRICT) as client:
        answer = await client.get(f"/v1/units/{STREET}/templates/formulas.csv")
    assert answer.status_code == 200, answer.text
    parsed = list(csv.reader(io.StringIO(answer.text.removeprefix("\ufeff"))))
    assert parsed[0] == ['\'=HYPERLINK("http://evil.example/login","黄河东路街道点此查看详情")']
    assert parsed[1] == ["'+社区", "'=cmd|' /C calc'!A0", "'-2+3"]
    assert parsed[-1][0] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    names = [u.name for u in load_registry().children(STREET)]
    assert [row[0] for row in parsed[2:-1]] == names  # other texts as they are
    assert all(cell.isdigit() for row in parsed[2:] for cell in row[1:])  # figures: numbers


async def test_texts_with_control_characters_are_refused_and_stored_ones_dropped_from_reports(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    old = {
        **ISOLATION_TABLE,
        "id": "controls",
        "unit": DISTRICT,
        "title": "{unit}\x07隔离\x1b表",
        "columns": [
            {"figure": "in_isolation", "heading": "在\x00隔离"},
            {"figure": "isolation_checks", "heading": "隔离\n核查"},  # two lines: kept
        ],
        "totals_label": "\t=SUM(1)",
    }
    await store_as_an_old_version_did(sqlite_engine, old)
    async with service(sqlite_engine, settings).client(DISTRICT, Role.OPERATE) as district:
        refused = await district.post("/v1/templates", json={**old, "id": "new-controls"})
        assert refused.status_code == 422, refused.text
        problems = {tuple(p["loc"]): p["msg"] for p in refused.json()["detail"]}
        assert "control characters (U+0007 at 6)" in problems[("body", "title")]
        assert "U+0000" in problems[("body", "columns", 0, "heading")]
        as_xlsx = await district.get(f"/v1/units/{STREET}/templates/controls.xlsx")
        as_csv = await district.get(f"/v1/units/{STREET}/templates/controls.csv")
    assert as_xlsx.status_code == 200, as_xlsx.text
    sheet = sheet_of(as_xlsx.content)
    assert sheet["A1"].value.endswith("隔离表") and sheet["B2"].value == "在隔离"
    assert sheet["C2"].value == "隔离\n核查"
    totals = sheet[f"A{sheet.max_row}"]
    assert totals.value == "\t=SUM(1)" and totals.quotePrefix
    parsed = list(csv.reader(io.StringIO(as_csv.text.removeprefix("\ufeff"))))
    assert parsed[0][0].endswith("隔离表") and parsed[1][1] == "在隔离"
    assert parsed[-1][0] == "'\t=SUM(1)"
