"""``zhibao tasks import``: a command centre's list (CSV or Excel, Chinese headers) becomes
tasks in a real response service, all of them or none."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from tests.dashboard.conftest import Served
from tests.support.events import COMMUNITY_A, COMMUNITY_B, resident_id
from zhibao_cli.main import app
from zhibao_cli.stack import wait_ready
from zhibao_response.bootstrap import create_app
from zhibao_response.settings import ResponseSettings
from zhibao_shared.db import run_migrations
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
TOMORROW = datetime.now(ZONE).date() + timedelta(days=1)
HEADER = ["序号", "姓名", "身份证号", "联系电话", "现住址", "核查要求", "完成时限", "所属社区"]
TOKENS = {
    "district": (["640106"], Role.OPERATE),
    "community_a": ([COMMUNITY_A], Role.OPERATE),
}


@dataclass
class RunningResponse:
    """The response service on a free port and its tokens."""

    url: str
    tokens: dict[str, str]

    def tasks(self, unit: str, who: str = "district") -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.url}/v1/tasks",
            params={"unit": unit, "limit": 5000},
            headers={"authorization": f"Bearer {self.tokens[who]}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        tasks: list[dict[str, Any]] = answer.json()["tasks"]
        return tasks


@pytest.fixture
def response(nats_server: NatsServer, tmp_path: Path) -> Iterator[RunningResponse]:
    """The response service (uvicorn in a thread) with a district and a community token."""
    data = tmp_path / "data"
    settings = ResponseSettings(
        data_dir=data, nats_url=nats_server.url, response_port=free_port(), log_json=True
    )
    asyncio.run(run_migrations(settings.database_url(), "zhibao_response"))
    store = TokenStore.in_data_dir(data)
    tokens = {
        name: store.create(scopes=scopes, role=role, name=name)[1]
        for name, (scopes, role) in TOKENS.items()
    }
    store.close()
    served = Served.start(create_app(settings), settings.response_port)
    url = f"http://127.0.0.1:{settings.response_port}"
    try:
        assert wait_ready(url, 60), "the response service did not become ready"
        yield RunningResponse(url, tokens)
    finally:
        served.stop()


def write_csv(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as sink:  # as Excel saves it
        writer = csv.writer(sink)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["tasks", "import", *args])
    return result.exit_code, result.output


def args(path: Path, response: RunningResponse, who: str = "district", *more: str) -> list[str]:
    return [str(path), "--url", response.url, "--token", response.tokens[who], *more]


def test_a_csv_list_issues_one_task_per_row_with_the_details_for_the_community(
    response: RunningResponse, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "companions.csv",
        [
            [
                1,
                "张秀兰",
                resident_id(seq=11),
                "13912345678",
                "枫林湾 3-2-501",
                "核查14天行程",
                f"{TOMORROW:%Y-%m-%d} 18:00",
                COMMUNITY_A,
            ],
            [
                2,
                "李明",
                resident_id(seq=14).lower(),
                "0951-5012345",
                "枫林湾 5-1-202",
                "",
                f"{TOMORROW:%Y/%m/%d}",
                "丰登社区",
            ],
            [3, "王芳", "", "13800001111", "", "电话核实", f"{TOMORROW:%Y年%m月%d日}", "金凤社区"],
        ],
    )
    ids = tmp_path / "ids.csv"
    code, output = run(*args(path, response), "--kind", "verify_companion", "--ids", str(ids))
    assert code == 0, output
    assert "3 rows valid" in output and "issued 3 tasks" in output
    assert "序号" in output  # the column not read is named
    # run again (as after a failure part way): the same tasks, not a second set
    again = tmp_path / "again.csv"
    code, output = run(*args(path, response), "--kind", "verify_companion", "--ids", str(again))
    assert code == 0, output
    assert again.read_text(encoding="utf-8") == ids.read_text(encoding="utf-8")
    tasks = {t["id"]: t for t in response.tasks("640106")}
    with ids.open(encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    assert [r["row"] for r in rows] == ["2", "3", "4"]
    assert set(tasks) == {r["task"] for r in rows}
    by_row = {int(r["row"]): tasks[r["task"]] for r in rows}
    assert [by_row[n]["unit"] for n in (2, 3, 4)] == [COMMUNITY_A, COMMUNITY_A, COMMUNITY_B]
    assert {t["kind"] for t in tasks.values()} == {"verify_companion"}
    first_due = datetime.fromisoformat(by_row[2]["due"]).astimezone(ZONE)
    assert (first_due.date(), first_due.hour, first_due.minute) == (TOMORROW, 18, 0)
    day_end = datetime.fromisoformat(by_row[3]["due"]).astimezone(ZONE)
    assert (day_end.date(), day_end.hour, day_end.minute) == (TOMORROW, 23, 59)
    # the community's own token reads the details the list gave
    own = {t["id"]: t for t in response.tasks(COMMUNITY_A, "community_a")}
    first = own[next(r["task"] for r in rows if r["row"] == "2")]
    assert first["contact"] == {
        "name": "张秀兰",
        "phone": "13912345678",
        "address": "枫林湾 3-2-501",
    }
    assert first["note"] == "核查14天行程"
    assert first["person"] == {"id_number": resident_id(seq=11)}
    second = own[next(r["task"] for r in rows if r["row"] == "3")]
    assert second["person"] == {"id_number": resident_id(seq=14)}  # a lower-case x is fine
    assert "note" not in second


def test_bad_rows_are_named_by_row_and_column_and_nothing_is_issued(
    response: RunningResponse, tmp_path: Path
) -> None:
    good = resident_id(seq=21)
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    due = f"{TOMORROW:%Y-%m-%d} 12:00"
    path = write_csv(
        tmp_path / "contacts.csv",
        [
            [1, "张三", good, "13912345678", "枫林湾 1-1-101", "", due, COMMUNITY_A],
            [2, "李四", wrong_check, "13912345679", "枫林湾 1-1-102", "", due, COMMUNITY_A],
            [3, "王五", resident_id(seq=23), "call me maybe", "枫林湾 1-1-103", "", due, "丰登"],
            [4, "赵六", resident_id(seq=24), "13912345670", "", "", due, "不存在社区"],
            [
                5,
                "钱七",
                resident_id(seq=25),
                "13912345671",
                "",
                "",
                "2020-01-01 08:00",
                COMMUNITY_A,
            ],
            [6, "孙八", resident_id(seq=26), "13912345672", "", "", "", COMMUNITY_A],
            [7, "周九", resident_id(seq=27), "13912345673", "", "", "明天", COMMUNITY_A],
            [8, "吴十", resident_id(seq=28), "13912345674", "", "", due, "640106999999"],
        ],
    )
    code, output = run(*args(path, response), "--kind", "verify_contact")
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.startswith("row ")]
    where = {line.split(":")[0] for line in lines}
    assert where == {
        "row 3, column 身份证号",
        "row 4, column 联系电话",
        "row 5, column 所属社区",
        "row 6, column 完成时限",
        "row 7, column 完成时限",
        "row 8, column 完成时限",
        "row 9, column 所属社区",
    }
    assert "already past" in output and "missing" in output
    assert "no task was issued" in output
    assert wrong_check not in output and "call me maybe" not in output
    assert response.tasks("640106") == []


def test_an_excel_list_of_thousands_is_issued_in_chunks(
    response: RunningResponse, tmp_path: Path
) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["金凤区疫情防控指挥部 时空伴随者核查清单"])  # a title row above the header
    sheet.append([*HEADER, "任务类型", "小区"])
    deadline = datetime.combine(TOMORROW, datetime.min.time()).replace(hour=20)
    total = 3000
    for n in range(total):
        sheet.append(
            [
                n + 1,
                f"居民{n}",
                resident_id(seq=n % 1000, born=date(1960 + n // 1000, 1, 1)),
                f"139{n:08d}",
                f"枫林湾 {n % 20}-{n % 6}-{n % 30 + 100}",
                "核查行程",
                deadline,  # an Excel date-time cell
                [COMMUNITY_A, COMMUNITY_B][n % 2],
                "时空伴随者" if n % 3 else "密接",
                "枫林湾",
            ]
        )
    path = tmp_path / "companions.xlsx"
    book.save(path)
    ids = tmp_path / "ids.csv"
    code, output = run(*args(path, response), "--chunk-size", "1000", "--ids", str(ids))
    assert code == 0, output
    assert f"issued {total} tasks" in output
    tasks = response.tasks("640106")
    assert len(tasks) == total
    kinds = [t["kind"] for t in tasks]
    assert kinds.count("verify_contact") == total // 3
    assert kinds.count("verify_companion") == total - total // 3
    assert {t["compound"] for t in tasks} == {"枫林湾"}
    due = datetime.fromisoformat(tasks[0]["due"]).astimezone(ZONE)
    assert (due.date(), due.hour) == (TOMORROW, 20)
    assert len(ids.read_text(encoding="utf-8").splitlines()) == total + 1


def test_a_refusal_after_some_chunks_says_which_rows_were_issued(
    response: RunningResponse, tmp_path: Path
) -> None:
    due = f"{TOMORROW:%Y-%m-%d} 12:00"
    path = write_csv(
        tmp_path / "mixed.csv",
        [
            [1, "张三", resident_id(seq=31), "13912345678", "", "", due, COMMUNITY_A],
            [2, "李四", resident_id(seq=32), "13912345679", "", "", due, COMMUNITY_B],
        ],
    )
    # the community's token covers the first row's community, not the second's
    code, output = run(*args(path, response, "community_a"), "--kind", "deliver")
    assert code == 1, output
    assert "403" in output and COMMUNITY_B in output and "no task was issued" in output
    assert response.tasks(COMMUNITY_A, "community_a") == []
    code, output = run(
        *args(path, response, "community_a"), "--kind", "deliver", "--chunk-size", "1"
    )
    assert code == 2, output
    assert "1 tasks were issued (rows up to 2)" in output
    assert "were NOT issued" in output
    assert [t["unit"] for t in response.tasks(COMMUNITY_A, "community_a")] == [COMMUNITY_A]


def test_a_sheet_without_a_deadline_column_is_refused_before_anything(
    response: RunningResponse, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "nodue.csv",
        [[1, "张三", resident_id(seq=41), "13912345678", COMMUNITY_A]],
        header=["序号", "姓名", "身份证号", "联系电话", "所属社区"],
    )
    code, output = run(*args(path, response), "--kind", "verify_contact")
    assert code == 1
    assert "row 1, column 完成时限: column missing" in output
    assert response.tasks("640106") == []


def test_other_header_spellings_and_a_community_for_the_whole_sheet(
    response: RunningResponse, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "street-list.csv",
        [
            ["赵一", "13700000001", f"{TOMORROW:%Y-%m-%d} 09:30", "消杀", "3号楼"],
            ["钱二", "13700000002", f"{TOMORROW:%Y-%m-%d} 10:30", "配送", ""],
        ],
        header=["人员姓名", "手机号", "截止时间", "任务类型", "备注"],
    )
    code, output = run(*args(path, response), "--community", "丰登社区", "--dry-run")
    assert code == 0, output
    assert "2 rows valid" in output and "issued" not in output
    assert response.tasks("640106") == []
    code, output = run(*args(path, response), "--community", "丰登社区")
    assert code == 0, output
    tasks = response.tasks(COMMUNITY_A, "community_a")
    assert sorted(t["kind"] for t in tasks) == ["deliver", "disinfect"]
    assert {t["contact"]["phone"] for t in tasks} == {"13700000001", "13700000002"}
    assert [t.get("note") for t in tasks] == ["3号楼", None]
