"""Importing a screening sheet with Chinese headers: all rows valid, or nothing sent."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from typer.testing import CliRunner

from tests.support.events import COMMUNITY_A, resident_id
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events, stored_messages
from zhibao_cli.main import app
from zhibao_client.importer import build_events

YESTERDAY = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)
WHEN = f"{YESTERDAY:%Y-%m-%d} 08:30"
HEADER = [
    "序号",
    "姓名",
    "身份证号",
    "体温(℃)",
    "小区",
    "楼栋",
    "单元",
    "检测时间",
    "症状",
    "是否来自风险地区",
]


def sheet(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    book = Workbook()
    book.active.append(["枫林湾社区入户筛查登记表"])  # a title row above the header
    book.active.append(header)
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def good_row(n: int) -> list[object]:
    name = "张三"
    return [n, name, resident_id(seq=n), 36.5 + n / 10, "枫林湾", "3", "2", WHEN, "无", "否"]


def import_args(path: Path, intake: RunningIntake, spool: Path) -> list[str]:
    return [
        "import",
        str(path),
        "--community",
        COMMUNITY_A,
        "--url",
        intake.url,
        "--token",
        intake.token(COMMUNITY_A),
        "--spool",
        str(spool),
    ]


def test_bad_rows_are_reported_by_row_and_column_and_nothing_is_sent(
    intake: RunningIntake, tmp_path: Path
) -> None:
    valid = resident_id(seq=7)
    wrong_check = valid[:17] + ("0" if valid[17] != "0" else "1")
    path = sheet(
        tmp_path / "screening.xlsx",
        [
            good_row(1),
            [2, "李四", wrong_check, 36.6, "枫林湾", "3", "1", WHEN, "无", "否"],
            [3, "王五", resident_id(seq=9), 52, "枫林湾", "4", "1", "yesterday", "打喷嚏", "不详"],
        ],
    )
    code, output = run(*import_args(path, intake, tmp_path / "s.db"))
    assert code == 1
    # the title row is row 1, the header row 2: data rows start at row 3 as Excel shows them
    assert "row 4, column 身份证号: check digit does not match" in output
    assert "row 5, column 检测时间" in output
    assert "row 5, column 症状: unknown symptom '打喷嚏'" in output
    assert "row 5, column 是否来自风险地区: must be 是 or 否" in output
    assert "row 5, column 体温(℃)" in output  # 52 °C is out of range
    assert "nothing was sent" in output
    assert wrong_check not in output and "李四" not in output and "王五" not in output
    assert stored_messages(intake.nats.url) == []


def test_a_good_sheet_is_sent_and_a_reimport_sends_duplicates_only(
    intake: RunningIntake, tmp_path: Path
) -> None:
    path = sheet(tmp_path / "screening.xlsx", [good_row(n) for n in range(1, 5)])
    args = import_args(path, intake, tmp_path / "s.db")
    code, output = run(*args)
    assert code == 0, output
    assert "4 rows valid" in output
    assert "accepted 4, duplicates 0, rejected 0, still spooled 0" in output
    assert "columns not read: 序号, 姓名, 单元" in output
    # re-saved with a row inserted on top: the old rows are duplicates, only the new one is new
    resaved = sheet(
        tmp_path / "screening-2.xlsx", [good_row(9)] + [good_row(n) for n in range(1, 5)]
    )
    code, output = run(*import_args(resaved, intake, tmp_path / "s.db"))
    assert code == 0 and "accepted 1, duplicates 4" in output
    code, output = run(*args)
    assert code == 0 and "accepted 0, duplicates 4" in output
    stored = stored_events(intake.nats.url)
    assert len(stored) == 5
    for _subject, event in stored:
        assert event["source"] == f"/{COMMUNITY_A}/import"
        assert event["data"]["site"] == "door_to_door"
        assert set(event["data"]["person"]) == {"pid"}
    for _subject, payload, _headers in stored_messages(intake.nats.url):
        assert "张三".encode() not in payload
        assert resident_id(seq=1).encode() not in payload


def test_a_dry_run_validates_and_sends_nothing(intake: RunningIntake, tmp_path: Path) -> None:
    path = sheet(tmp_path / "screening.xlsx", [good_row(1), good_row(2)])
    code, output = run(*import_args(path, intake, tmp_path / "s.db"), "--dry-run")
    assert code == 0 and "2 rows valid" in output
    assert stored_messages(intake.nats.url) == []


def test_a_csv_sheet_with_header_variants_and_split_date_and_time(tmp_path: Path) -> None:
    path = tmp_path / "screening.csv"
    rows = [
        "姓名,身份证号码,体温（℃）,楼号,日期,时间,主要症状,14天内是否去过风险地区",
        f"赵六,{resident_id(seq=11)},37.8℃,5,{YESTERDAY:%Y/%m/%d},9:05,发烧、咳嗽,是",
        f"钱七,{resident_id(seq=12).lower()},36.4,5,{YESTERDAY:%Y年%m月%d日},10:30,无,否",
    ]
    path.write_text("\n".join(rows), encoding="utf-8-sig")
    result = build_events(path, COMMUNITY_A)
    first, second = result.events
    assert first["time"] == f"{YESTERDAY.isoformat()}T09:05:00+08:00"
    assert first["data"]["temperature_c"] == 37.8
    assert first["data"]["symptoms"] == ["fever", "cough"]
    assert first["data"]["travel_from_risk_area"] is True
    assert first["data"]["building"] == "5"
    assert second["data"]["person"] == {"id_number": resident_id(seq=12)}  # normalised
    assert result.ignored_columns == ["姓名"]
    assert "赵六" not in json.dumps(result.events, ensure_ascii=False)
