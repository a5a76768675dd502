"""Importing a screening sheet with Chinese headers: all rows valid, or nothing sent."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from typer.testing import CliRunner

from tests.support.events import COMMUNITY_A, resident_id
from tests.support.intake import RunningIntake
from tests.support.stream import stored_messages
from zhibao_cli.main import app

HEADER = [
    "序号",
    "姓名",
    "身份证号",
    "体温",
    "小区",
    "楼栋",
    "检测时间",
    "症状",
    "是否来自风险地区",
]


def sheet(path: Path, rows: list[list[object]]) -> Path:
    book = Workbook()
    book.active.append(HEADER)
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def good_row(n: int) -> list[object]:
    return [
        n,
        "张三",
        resident_id(seq=n),
        36.5 + n / 10,
        "枫林湾",
        "3",
        "2026-11-25 08:30",
        "无",
        "否",
    ]


def test_bad_rows_are_reported_by_row_and_column_and_nothing_is_sent(
    intake: RunningIntake, tmp_path: Path
) -> None:
    wrong_check = resident_id(seq=7)[:17] + ("0" if not resident_id(seq=7).endswith("0") else "1")
    path = sheet(
        tmp_path / "screening.xlsx",
        [
            good_row(1),
            [2, "李四", wrong_check, 36.6, "枫林湾", "3", "2026-11-25 08:31", "无", "否"],
            [3, "王五", resident_id(seq=9), 52, "枫林湾", "4", "yesterday", "打喷嚏", "否"],
        ],
    )
    code, output = run(
        "import",
        str(path),
        "--community",
        COMMUNITY_A,
        "--url",
        intake.url,
        "--token",
        intake.token(COMMUNITY_A),
        "--spool",
        str(tmp_path / "s.db"),
    )
    assert code == 1
    assert "row 3, column 身份证号: check digit does not match" in output
    assert "row 4, column 检测时间" in output
    assert "row 4, column 症状" in output
    assert wrong_check not in output and "李四" not in output
    assert stored_messages(intake.nats.url) == []


def test_a_good_sheet_is_sent_and_a_reimport_sends_duplicates_only(
    intake: RunningIntake, tmp_path: Path
) -> None:
    path = sheet(tmp_path / "screening.xlsx", [good_row(n) for n in range(1, 5)])
    args = [
        "import",
        str(path),
        "--community",
        COMMUNITY_A,
        "--url",
        intake.url,
        "--token",
        intake.token(COMMUNITY_A),
        "--spool",
        str(tmp_path / "s.db"),
    ]
    assert run(*args) == (
        0,
        "4 rows valid\naccepted 4, duplicates 0, rejected 0, still spooled 0\n",
    )
    code, output = run(*args)
    assert code == 0 and "accepted 0, duplicates 4" in output
    stored = stored_messages(intake.nats.url)
    assert len(stored) == 4
    assert all("张三".encode() not in payload for _s, payload, _h in stored)
