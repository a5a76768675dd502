"""``zhibao registry import-places``: a table of compounds, grids and buildings (CSV or
XLSX) becomes the places file the services load."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from zhibao_cli.main import app
from zhibao_shared.places import PlaceMatch, Places, load_places
from zhibao_shared.settings import ZhibaoSettings

FENGDENG = "640106001001"  # 丰登社区
YUEHU = "640106001002"  # 悦湖社区
HEADER = ["编号", "社区", "类型", "名称", "别名", "所属小区", "所属网格", "网格员", "户数", "人口"]
ROWS = [
    ["", "丰登社区", "小区", "枫林湾", "枫林湾小区、枫林湾一期", "", "", "", "620", "1310"],
    ["", FENGDENG, "小区", "翠湖花园", "", "", "", "", "380", ""],
    ["", "丰登", "网格", "第1网格", "", "", "", "网格员 王芳", "500", ""],
    ["", "丰登社区", "网格", "第2网格", "", "", "", "网格员 李强", "500", ""],
    ["", "丰登社区", "楼栋", "1号楼", "", "枫林湾", "第1网格", "", "96", ""],
    ["", "丰登社区", "楼栋", "2号楼", "", "枫林湾小区", "第1网格", "", "96", ""],
    ["", "丰登社区", "楼栋", "3栋", "", "枫林湾", "第2网格", "", "1,200", ""],
    ["", "丰登社区", "楼栋", "1号楼", "", "翠湖花园", "2", "", "", ""],
    [f"{YUEHU}-C001", "", "小区", "未来城", "", "", "", "", "", ""],
    [f"{YUEHU}-C001-B007", "", "楼栋", "7号楼", "", "", "", "", "", ""],
]


def _csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        csv.writer(out).writerows([header, *rows])
    return path


def _import(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["registry", "import-places", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_table_becomes_the_places_file_the_services_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "places.jsonl"
    monkeypatch.setenv("ZHIBAO_PLACES_PATH", str(output))
    code, stdout, stderr = _import(str(_csv(tmp_path / "places.csv", ROWS)))
    assert code == 0, stderr
    assert "3 compound, 2 grid, 5 building" in stdout
    assert ZhibaoSettings().places_path == output
    places = load_places(output)
    compounds = places.compounds(FENGDENG)
    assert [(c.id, c.name, c.households) for c in compounds] == [
        (f"{FENGDENG}-C001", "枫林湾", 620),
        (f"{FENGDENG}-C002", "翠湖花园", 380),
    ]
    assert compounds[0].aliases == ("枫林湾小区", "枫林湾一期")
    assert [(g.id, g.worker) for g in places.grids(FENGDENG)] == [
        (f"{FENGDENG}-G001", "网格员 王芳"),
        (f"{FENGDENG}-G002", "网格员 李强"),
    ]
    assert [b.name for b in places.buildings(f"{FENGDENG}-C001")] == ["1号楼", "2号楼", "3栋"]
    assert places.match(FENGDENG, compound="枫林湾一期", building="三号楼") == PlaceMatch(
        f"{FENGDENG}-C001", f"{FENGDENG}-C001-B003", f"{FENGDENG}-G002"
    )
    assert places.match(FENGDENG, compound="翠湖花园", building="1栋").grid == f"{FENGDENG}-G002"
    assert places.get(f"{YUEHU}-C001-B007") is not None, "given ids are kept"


def test_a_reimport_keeps_every_id_and_never_reuses_one(tmp_path: Path) -> None:
    output = tmp_path / "places.jsonl"
    assert _import(str(_csv(tmp_path / "a.csv", ROWS)), "-o", str(output))[0] == 0
    before = {(p.community, p.name): p.id for p in Places.from_lines(output.read_text("utf-8"))}
    changed = [ROWS[1], ROWS[0], *ROWS[2:4], ROWS[7]]  # 枫林湾's buildings gone, order changed
    changed += [["", "丰登社区", "小区", "湖畔新居", "", "", "", "", "", ""]]
    changed += [["", "丰登社区", "楼栋", "2号楼", "", "翠湖花园", "", "", "", ""]]
    code, _, stderr = _import(str(_csv(tmp_path / "b.csv", changed)), "-o", str(output))
    assert code == 0, stderr
    after = Places.from_lines(output.read_text("utf-8"))
    compounds = {p.name: p.id for p in after.compounds(FENGDENG)}
    assert compounds["枫林湾"] == before[(FENGDENG, "枫林湾")] == f"{FENGDENG}-C001"
    assert compounds["翠湖花园"] == f"{FENGDENG}-C002"
    assert compounds["湖畔新居"] == f"{FENGDENG}-C003", "a new compound gets a new number"
    assert [b.id for b in after.buildings(f"{FENGDENG}-C002")] == [
        f"{FENGDENG}-C002-B001",
        f"{FENGDENG}-C002-B002",
    ]
    assert after.buildings(f"{FENGDENG}-C001") == []


def test_bad_rows_are_named_by_row_and_nothing_is_written(tmp_path: Path) -> None:
    bad = [
        ["", "不存在社区", "小区", "某小区", "", "", "", "", "", ""],
        [f"{YUEHU}-C001", "", "小区", "另一个", "", "", "", "", "", ""],
        ["", "丰登社区", "楼栋", "5号楼", "", "", "", "", "", ""],
        ["", "丰登社区", "楼栋", "6号楼", "", "星河湾", "", "", "", ""],
        ["", "丰登社区", "办公楼", "某楼", "", "", "", "", "", ""],
        ["", "丰登社区", "小区", "枫园", "", "", "", "网格员 赵六", "", ""],
        ["", "丰登社区", "网格", "第3网格", "", "", "", "", "约300", ""],
        ["", "丰登社区", "楼栋", "9号楼", "", "枫林湾", "第9网格", "", "", ""],
        ["", "640106009999", "网格", "第1网格", "", "", "", "", "", ""],
        [f"{FENGDENG}-G005", "", "小区", "错类型", "", "", "", "", "", ""],
        [f"{YUEHU}-C004-B001", "", "楼栋", "1号楼", "", "", "", "", "", ""],
        ["", "丰登社区", "楼栋", "三号楼", "", "枫林湾", "", "", "", ""],
    ]
    output = tmp_path / "places.jsonl"
    code, _, stderr = _import(str(_csv(tmp_path / "p.csv", ROWS + bad)), "-o", str(output))
    assert code == 1
    first = len(ROWS) + 2  # the header is row 1
    lines = stderr.splitlines()
    assert lines[0].startswith(f"row {first}: community '不存在社区'")
    assert f"row {first + 1}: id {YUEHU}-C001 is listed twice (row 10)" in stderr
    assert f"row {first + 2}: a building names its compound (所属小区)" in stderr
    assert f"row {first + 3}: compound '星河湾' is not listed in community {FENGDENG}" in stderr
    assert f"row {first + 4}: kind '办公楼' is not 小区, 网格 or 楼栋" in stderr
    assert f"row {first + 5}: only a grid has a worker" in stderr
    assert f"row {first + 6}: households '约300' is not a whole number" in stderr
    assert f"row {first + 7}: grid '第9网格' is not listed" in stderr
    assert f"row {first + 8}: community '640106009999': not a community code" in stderr
    assert f"row {first + 9}: id '{FENGDENG}-G005' is not the id of a compound" in stderr
    assert f"row {first + 10}: the compound of {YUEHU}-C004-B001 ({YUEHU}-C004) is not" in stderr
    assert f"row {first + 11}: building '三号楼' is listed twice in {FENGDENG}-C001 (row 8)" in (
        stderr
    )
    assert "12 bad row(s): nothing written" in stderr
    assert not output.exists()


def test_an_xlsx_table_with_english_headers_and_numbers(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["community", "kind", "name", "compound", "grid", "worker", "households"])
    sheet.append([int(FENGDENG), "compound", "枫林湾", None, None, None, 620])
    sheet.append([int(FENGDENG), "grid", "第1网格", None, None, "网格员 王芳", 620.0])
    sheet.append([int(FENGDENG), "building", "1号楼", "枫林湾", "第1网格", None, 96])
    workbook.save(tmp_path / "places.xlsx")
    output = tmp_path / "places.jsonl"
    code, _, stderr = _import(str(tmp_path / "places.xlsx"), "-o", str(output))
    assert code == 0, stderr
    places = load_places(output)
    grid = places.grid_of(f"{FENGDENG}-C001-B001")
    assert grid is not None and (grid.worker, grid.households) == ("网格员 王芳", 620)


def test_a_table_without_kind_or_name_columns_is_refused(tmp_path: Path) -> None:
    table = _csv(tmp_path / "p.csv", [["丰登社区", "枫林湾"]], header=["社区", "小区名"])
    code, _, stderr = _import(str(table), "-o", str(tmp_path / "out.jsonl"))
    assert code == 1
    assert "row 1: the header names no kind or name column" in stderr
