"""A sheet's size is bounded before it is read whole: a workbook of a few kilobytes with a
cell at XFD1048576 once took gigabytes (``zhibao import`` and ``zhibao tasks import``)."""

from __future__ import annotations

import resource
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from zhibao_client.importer import ImportRefused, read_sheet
from zhibao_client.sheet import MAX_COLUMNS, MAX_UNPACKED_BYTES, read_rows


def _workbook(path: Path, far_cell: str) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["姓名", "体温", "测温时间"])
    sheet.append(["张三", 36.6, "2026-12-07 08:00"])
    sheet[far_cell] = "x"
    book.save(path)
    return path


def test_a_cell_far_below_the_data_refuses_the_sheet_in_bounded_memory(tmp_path: Path) -> None:
    bomb = _workbook(tmp_path / "bomb.xlsx", "XFD1048576")
    assert bomb.stat().st_size < 20_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImportRefused) as refused:
        read_sheet(bomb)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert "more than 200,000 rows" in str(refused.value.errors[0])
    assert grown_mb < 500, f"reading grew the process by {grown_mb:.0f} MB"


def test_a_cell_far_right_of_the_data_is_cut_and_the_rows_kept(tmp_path: Path) -> None:
    wide = _workbook(tmp_path / "wide.xlsx", "XFD2")
    rows = read_rows(wide)
    assert rows[0] == ["姓名", "体温", "测温时间"]
    assert rows[1] == ["张三", 36.6, "2026-12-07 08:00"]
    assert all(len(row) <= MAX_COLUMNS for row in rows)


def test_a_workbook_that_unpacks_to_too_much_is_refused_before_it_is_parsed(
    tmp_path: Path,
) -> None:
    """One cell of hundreds of megabytes in a file of a few hundred kilobytes."""
    plain = _workbook(tmp_path / "plain.xlsx", "C3")
    padded = tmp_path / "padded.xlsx"
    with (
        zipfile.ZipFile(plain) as source,
        zipfile.ZipFile(padded, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(
                    b"<sheetData>", b"<sheetData>" + b" " * (MAX_UNPACKED_BYTES + 1)
                )
            out.writestr(member, data)
    assert padded.stat().st_size < 2_000_000
    with pytest.raises(ImportRefused) as refused:
        read_sheet(padded)
    assert "unpacks to" in str(refused.value.errors[0])
