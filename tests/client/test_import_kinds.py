"""Importing the other sheets a community keeps — isolation rosters, case lists, daily
closes — through a real intake into the aggregator's rollups; bad rows by row and column,
nothing half-sent."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from typer.testing import CliRunner

from tests.aggregator.harness import consume
from tests.support.events import COMMUNITY_A, resident_id
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events, stored_messages
from zhibao_aggregator.bootstrap import reader
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_cli.main import app
from zhibao_client.importer import build_events
from zhibao_shared.db import make_engine

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
#: A morning surely past (this morning is in the future just after local midnight).
YESTERDAY = TODAY - timedelta(days=1)
START = TODAY - timedelta(days=3)


def day(offset: int) -> date:
    """START plus ``offset`` days."""
    return START + timedelta(days=offset)


def md(d: date) -> str:
    return f"{d.month}月{d.day}日"


def sheet(path: Path, title: str, header: list[Any], rows: list[list[Any]]) -> Path:
    book = Workbook()
    active = book.active
    assert active is not None
    active.append([title])
    active.append(header)
    for row in rows:
        active.append(row)
    book.save(path)
    return path


def wrong_check_digit(valid: str) -> str:
    return valid[:17] + ("0" if valid[17] != "0" else "1")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def send(path: Path, intake: RunningIntake, spool: Path, *extra: str) -> tuple[int, str]:
    token = intake.token(COMMUNITY_A)
    common = ["--community", COMMUNITY_A, "--url", intake.url, "--token", token]
    return run("import", str(path), *common, "--spool", str(spool), *extra)


def rollups(intake: RunningIntake, tmp_path: Path, days: list[date]) -> dict[date, Any]:
    """The community's figures on each day after the aggregator consumed the stream."""
    settings = AggregatorSettings(data_dir=tmp_path / "agg", nats_url=intake.nats.url)

    async def count() -> dict[date, Any]:
        await migrate(settings.database_url())
        engine = make_engine(settings.database_url())
        try:
            await consume(intake.nats.url, engine, settings)
            read = reader(settings, engine)
            return {d: await read.figures(COMMUNITY_A, d) for d in days}
        finally:
            await engine.dispose()

    return asyncio.run(count())


ROSTER_HEADER = [
    "序号",
    "姓名",
    "身份证号",
    "联系电话",
    "隔离方式",
    "开始隔离日期",
    "计划解除日期",
    "实际解除日期",
    f"{md(day(0))}体温",
    f"{md(day(1))}体温",
    "第3天体温",
]


def roster_rows() -> list[list[Any]]:
    until = day(13).isoformat()
    a = [1, "张三", resident_id(seq=31), "13800000001", "居家隔离", day(0), until, None]
    b = [2, "李四", resident_id(seq=32), "13800000002", "居家", day(0).isoformat(), until, None]
    c = [3, "王五", resident_id(seq=33), "13800000003", "集中隔离", f"{day(0):%Y/%m/%d}", None]
    return [
        [*a, 36.5, "36.6℃", 36.7],
        [*b, "√", "外出", 36.8],
        [*c, day(2).isoformat(), 36.4, 36.5, None],
    ]


def test_an_isolation_roster_counts_starts_checks_breaches_and_ends(
    intake: RunningIntake, tmp_path: Path
) -> None:
    path = sheet(
        tmp_path / "隔离人员登记表.xlsx",
        "枫林湾社区居家隔离人员登记表",
        ROSTER_HEADER,
        roster_rows(),
    )
    code, output = send(path, intake, tmp_path / "s.db")
    assert code == 0, output
    # three starts, eight checks or breaches, one end
    assert "3 rows valid (isolation: 12 events)" in output
    assert "accepted 12, duplicates 0" in output
    assert "columns not read: 序号, 姓名, 联系电话" in output
    code, output = send(path, intake, tmp_path / "s.db")
    assert code == 0 and "accepted 0, duplicates 12" in output
    found = rollups(intake, tmp_path, [day(0), day(1), day(2)])
    assert [found[day(n)]["isolation_started"] for n in range(3)] == [3, 0, 0]
    assert [found[day(n)]["isolation_checks"] for n in range(3)] == [3, 2, 2]
    assert [found[day(n)]["isolation_breaches"] for n in range(3)] == [0, 1, 0]
    assert [found[day(n)]["isolation_ended"] for n in range(3)] == [0, 0, 1]
    assert [found[day(n)]["in_isolation"] for n in range(3)] == [3, 3, 2]
    kinds = sorted(e["data"]["kind"] for _s, e in stored_events(intake.nats.url))
    assert kinds.count("centralized") == 4 and kinds.count("home") == 8
    for _subject, payload, _headers in stored_messages(intake.nats.url):
        assert "张三".encode() not in payload and b"13800000001" not in payload
        assert resident_id(seq=31).encode() not in payload


def test_a_case_list_counts_each_classification(intake: RunningIntake, tmp_path: Path) -> None:
    yesterday = TODAY - timedelta(days=1)
    header = ["姓名", "身份证号", "病例分类", "诊断时间", "发病日期", "小区", "楼栋"]
    rows: list[list[Any]] = [
        ["赵一", resident_id(seq=41), "确诊病例", f"{yesterday} 10:00", f"{day(0)}", "枫林湾", "3"],
        ["赵二", resident_id(seq=42), "疑似", f"{yesterday:%Y/%m/%d} 11:30", None, "枫林湾", "3"],
        ["赵三", resident_id(seq=43), "密切接触者", yesterday, None, "枫林湾", "5"],
        ["赵四", resident_id(seq=44), "无症状感染者", f"{yesterday:%Y年%m月%d日} 09:00", None],
    ]
    path = sheet(tmp_path / "病例名单.xlsx", "病例名单", header, rows)
    code, output = send(path, intake, tmp_path / "s.db")
    assert code == 0, output
    assert "4 rows valid (case: 4 events)" in output
    figures = rollups(intake, tmp_path, [yesterday])[yesterday]
    for name in ("new_confirmed", "new_suspected", "new_close_contact", "new_asymptomatic"):
        assert figures[name] == 1, name
    assert figures["current_confirmed"] == 1


def test_daily_closes_count_reports_and_zero_reports(intake: RunningIntake, tmp_path: Path) -> None:
    header = ["日期", "是否零报告", "排查人次", "发热人数", "新增确诊", "上报时间", "填报人"]
    rows: list[list[Any]] = [
        [day(0), "否", 812, 2, 0, None, "刘"],
        [day(1).isoformat(), "是", None, None, None, f"{day(1)} 20:05", "刘"],
        [f"{day(2):%Y年%m月%d日}", "否", "640", "1", "0", None, "刘"],
    ]
    path = sheet(tmp_path / "日报.xlsx", "枫林湾社区疫情日报登记", header, rows)
    code, output = send(path, intake, tmp_path / "s.db", "--kind", "daily_report")
    assert code == 0, output
    assert "3 rows valid (daily_report: 3 events)" in output
    assert "columns not read: 填报人" in output
    code, output = send(path, intake, tmp_path / "s.db")  # recognised; same ids again
    assert code == 0 and "accepted 0, duplicates 3" in output
    found = rollups(intake, tmp_path, [day(0), day(1), day(2)])
    assert [found[day(n)]["reports_received"] for n in range(3)] == [1, 1, 1]
    assert [found[day(n)]["reports_zero"] for n in range(3)] == [0, 1, 0]
    declared = {
        e["data"]["date"]: e["data"].get("counts") for _s, e in stored_events(intake.nats.url)
    }
    assert declared[day(0).isoformat()] == {"screenings": 812, "fevers": 2, "new_confirmed": 0}
    assert declared[day(1).isoformat()] is None


def test_bad_rows_of_every_kind_are_reported_by_row_and_column_and_nothing_is_sent(
    intake: RunningIntake, tmp_path: Path
) -> None:
    roster = roster_rows()
    roster[0][4] = "在家"  # no such isolation kind
    roster[1][9] = "没测"  # neither a temperature, √ nor 外出
    roster[2][5] = "上周"  # no date
    path = sheet(tmp_path / "roster.xlsx", "登记表", ROSTER_HEADER, roster)
    code, output = send(path, intake, tmp_path / "s.db")
    assert code == 1
    assert "row 3, column 隔离方式: must be 居家 or 集中" in output
    assert (
        f"row 4, column {md(day(1))}体温: a temperature (36.5), √ when checked, or 外出" in output
    )
    assert "row 5, column 开始隔离日期: not a date, e.g. 2026-11-25" in output
    assert "nothing was sent" in output and "张三" not in output
    cases = sheet(
        tmp_path / "cases.xlsx",
        "病例名单",
        ["身份证号", "分类", "诊断时间"],
        [
            [resident_id(seq=51), "阳性", f"{YESTERDAY} 08:00"],
            [wrong_check_digit(resident_id(seq=52)), "确诊", "昨天"],
            [None, "疑似", f"{TODAY + timedelta(days=3)} 08:00"],
        ],
    )
    code, output = send(cases, intake, tmp_path / "s.db")
    assert code == 1
    assert (
        "row 3, column 分类: must be 疑似, 确诊, 无症状感染者, 密切接触者, 排除, 治愈 or 死亡"
        in output
    )
    assert "row 4, column 身份证号: check digit does not match" in output
    assert "row 4, column 诊断时间: not a date (and time)" in output
    assert "row 5, column 身份证号: missing" in output
    assert "row 5, column 诊断时间: lies in the future" in output
    closes = sheet(
        tmp_path / "closes.xlsx",
        "日报",
        ["报告日期", "零报告", "发热人数"],
        [[day(0), "否", 1], [day(1), "可能", -2], [None, "是", None]],
    )
    code, output = send(closes, intake, tmp_path / "s.db")
    assert code == 1
    assert "row 4, column 零报告: must be 是 or 否" in output
    assert "row 4, column 发热人数: must be a whole number, 0 or more" in output
    assert "row 5, column 报告日期: missing" in output
    assert stored_messages(intake.nats.url) == []


def test_a_sheet_of_no_known_kind_or_the_wrong_kind_names_the_missing_columns(
    tmp_path: Path,
) -> None:
    path = sheet(tmp_path / "roster.xlsx", "登记表", ROSTER_HEADER, roster_rows())
    code, output = run(
        "import", str(path), "--community", COMMUNITY_A, "--kind", "case", "--dry-run"
    )
    assert code == 1
    assert "column 分类: column missing for a 病例名单 (case list)" in output
    code, output = run("import", str(path), "--community", COMMUNITY_A, "--kind", "nope")
    assert code == 2 and "--kind" in output
    other = sheet(tmp_path / "other.xlsx", "名单", ["姓名", "电话"], [["张三", "138"]])
    code, output = run("import", str(other), "--community", COMMUNITY_A, "--dry-run")
    assert code == 1
    for column in ("体温", "分类", "诊断时间", "隔离方式", "开始隔离日期", "日期", "是否零报告"):
        assert f"column {column}: column missing" in output
    result = build_events(path, COMMUNITY_A)
    assert result.kind == "isolation" and result.rows == 3 and len(result.events) == 12
    screening = sheet(
        tmp_path / "screening.xlsx",
        "入户筛查",
        ["身份证号", "人员类别", "体温", "检测时间"],
        [[resident_id(seq=61), "流动人口", 36.6, f"{YESTERDAY} 07:30"]],
    )
    found = build_events(screening, COMMUNITY_A)
    assert found.kind == "screening" and found.ignored_columns == ["人员类别"]
