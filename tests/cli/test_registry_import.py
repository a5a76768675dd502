"""``zhibao registry import``: the NBS division-code table (CSV or XLSX) becomes a registry."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from zhibao_cli.main import app
from zhibao_shared.hierarchy import Level, Registry, level_of
from zhibao_shared.settings import ZhibaoSettings

HEADER = ["统计用区划代码", "城乡分类代码", "名称"]
GOOD = [
    ["640000000000", "", "宁夏回族自治区"],
    ["640100000000", "", "银川市"],
    ["640106000000", "", "金凤区"],
    ["640106001000", "", "黄河东路街道"],
    ["640106001001", "111", "宝湖社区居民委员会"],
    ["640106100000", "", "良田镇"],
    ["640106100201", "220", "园子村委会"],
    ["641900000000", "", "某市"],  # a city without districts (as 东莞 is)
    ["641900003000", "", "某街道"],
    ["641900003001", "111", "某社区居民委员会"],
]
BAD = [
    ["64010600200", "", "少一位街道"],  # 11 digits
    ["640106002000", "", ""],  # no name
    ["640106001001", "111", "重复社区"],  # listed twice
    ["640106001002", "11x", "分类错社区"],  # urban-rural class not 3 digits
    ["000000000000", "", "无"],  # names no unit
]


def _write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        csv.writer(out).writerows(rows)
    return path


def _write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def _import(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["registry", "import", *args])
    return result.exit_code, result.stdout, result.stderr


def _check_small(registry: Registry) -> None:
    assert [u.code for u in registry.top()] == ["64"]
    assert registry["64"].level is Level.PROVINCE
    assert registry["6401"].parent == "64"
    assert registry["640106001001"].parent == "640106001"
    assert registry["640106001001"].level is Level.COMMUNITY
    assert registry["640106100"].name == "良田镇" and registry["640106100"].level is Level.STREET
    assert registry["640106100201"].parent == "640106100"
    # no district 641900: the street hangs from the city, the nearest unit above it
    assert registry["641900003"].parent == "6419"
    assert registry.count_communities_under("64") == 3


def test_a_csv_table_becomes_the_registry_the_services_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _write_csv(tmp_path / "codes.csv", [HEADER, *GOOD])
    output = tmp_path / "registry.yaml"
    monkeypatch.setenv("ZHIBAO_REGISTRY_PATH", str(output))
    code, stdout, _ = _import(str(table))
    assert code == 0
    assert "1 province, 2 city, 1 district, 3 street, 3 community" in stdout
    assert ZhibaoSettings().registry_path == output
    _check_small(Registry.from_yaml(output.read_text("utf-8")))


def test_a_gb18030_csv_without_header_is_read_as_published(tmp_path: Path) -> None:
    table = _write_csv(tmp_path / "codes.csv", GOOD, encoding="gb18030")
    output = tmp_path / "registry.yaml"
    assert _import(str(table), "--output", str(output))[0] == 0
    _check_small(Registry.from_yaml(output.read_text("utf-8")))


def test_bad_csv_rows_are_reported_by_row_and_nothing_is_written(tmp_path: Path) -> None:
    table = _write_csv(tmp_path / "codes.csv", [HEADER, *GOOD, *BAD])
    output = tmp_path / "registry.yaml"
    code, _, stderr = _import(str(table), "--output", str(output))
    assert code == 1
    first = len(GOOD) + 2  # the header is row 1
    assert [line.split(":")[0] for line in stderr.splitlines()[:5]] == [
        f"row {n}" for n in range(first, first + 5)
    ]
    assert "'64010600200' is not a 12-digit division code" in stderr
    assert f"row {first + 1}: code 640106002000: the name is empty" in stderr
    assert f"row {first + 2}: code 640106001001 is listed twice (row 6)" in stderr
    assert "urban-rural class '11x'" in stderr
    assert f"row {first + 4}: code '000000000000' names no unit" in stderr
    assert "5 bad row(s): nothing written" in stderr
    assert not output.exists()

    assert _import(str(table), "--output", str(output), "--skip-bad-rows")[0] == 0
    registry = Registry.from_yaml(output.read_text("utf-8"))
    _check_small(registry)
    assert registry["640106001001"].name == "宝湖社区居民委员会"  # the first listing kept


def test_an_xlsx_table_with_codes_typed_as_numbers(tmp_path: Path) -> None:
    rows: list[list[object]] = [list(HEADER)]
    rows += [[int(c), u or None, n] for c, u, n in GOOD]
    rows.append([64010600200, None, "少一位街道"])
    table = _write_xlsx(tmp_path / "codes.xlsx", rows)
    output = tmp_path / "registry.yaml"
    code, _, stderr = _import(str(table), "--output", str(output))
    assert code == 1
    assert stderr.splitlines()[0] == (
        f"row {len(GOOD) + 2}: code '64010600200' is not a 12-digit division code"
    )
    assert _import(str(table), "--output", str(output), "--skip-bad-rows")[0] == 0
    _check_small(Registry.from_yaml(output.read_text("utf-8")))


def _province_table(cities: int, districts: int, streets: int, communities: int) -> list[list[str]]:
    rows = [HEADER, ["650000000000", "", "某自治区"]]
    for c in range(1, cities + 1):
        rows.append([f"65{c:02d}00000000", "", f"第{c}市"])
        for d in range(1, districts + 1):
            rows.append([f"65{c:02d}{d:02d}000000", "", f"第{c}市第{d}区"])
            for s in range(1, streets + 1):
                rows.append([f"65{c:02d}{d:02d}{s:03d}000", "", f"街道{c}-{d}-{s}"])
                rows += [
                    [f"65{c:02d}{d:02d}{s:03d}{k:03d}", "111", f"社区{c}-{d}-{s}-{k}"]
                    for k in range(1, communities + 1)
                ]
    return rows


def test_a_whole_province_of_thirty_thousand_units(tmp_path: Path) -> None:
    table = _write_csv(tmp_path / "province.csv", _province_table(5, 10, 12, 50))
    output = tmp_path / "registry.yaml"
    code, stdout, _ = _import(str(table), "--output", str(output))
    assert code == 0, stdout
    registry = Registry.from_yaml(output.read_text("utf-8"))
    assert len(registry) == 1 + 5 + 50 + 600 + 30_000
    assert [len(registry.at_level(level)) for level in Level] == [1, 5, 50, 600, 30_000]
    for unit in registry:
        assert level_of(unit.code) is unit.level
        if unit.level is not Level.PROVINCE:
            assert unit.parent is not None and unit.code.startswith(unit.parent)
            assert registry[unit.parent].level is list(Level)[list(Level).index(unit.level) - 1]
    assert registry.count_communities_under("65") == 30_000
    assert registry.count_communities_under("6503") == 6_000
    assert [u.code for u in registry.children("650310012")][:2] == [
        "650310012001",
        "650310012002",
    ]
    assert registry["650310012050"].name == "社区3-10-12-50"
