"""The daily statistical report (统计报表) of a unit: one row per child and a total."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from zhibao_aggregator.reader import Figures

COLUMNS: tuple[tuple[str, str], ...] = (
    ("screenings", "筛查人次 screenings"),
    ("fevers", "发热 fevers"),
    ("travel_flagged", "风险地区旅居 travel from risk area"),
    ("new_suspected", "新增疑似 new suspected"),
    ("new_confirmed", "新增确诊 new confirmed"),
    ("new_asymptomatic", "新增无症状 new asymptomatic"),
    ("new_close_contact", "新增密接 new close contacts"),
    ("current_confirmed", "现有确诊 current confirmed"),
    ("cumulative_confirmed", "累计确诊 cumulative confirmed"),
    ("cumulative_recovered", "累计治愈 cumulative recovered"),
    ("cumulative_deceased", "累计死亡 cumulative deaths"),
    ("in_isolation", "隔离中 in isolation"),
    ("isolation_checks_missed", "漏检 checks missed"),
    ("isolation_breaches", "违规 breaches"),
    ("reports_received", "已报社区 communities reported"),
    ("reports_late", "迟报 late reports"),
    ("reports_missing", "未报 missing reports"),
    ("reports_overdue", "逾期未报 overdue reports"),
    ("corrections", "更正 corrections"),
    ("days_since_last_new_confirmed", "无新增天数 days since last new confirmed"),
    ("risk_level", "风险等级 risk level"),
    ("tasks_open", "未完成任务 tasks open"),
    ("tasks_overdue", "超时任务 tasks overdue"),
    ("tasks_done", "完成任务 tasks done"),
    ("tasks_unreachable", "无法联系 tasks unreachable"),
    ("median_hours_to_done", "完成用时中位数(小时) median hours to done"),
)
HEADER = ("代码 code", "名称 name", *(title for _, title in COLUMNS))

Row = tuple[str, str, Figures]


def table(rows: Sequence[Row]) -> list[list[object]]:
    """Header and data rows; the last row is the unit's own total."""
    out: list[list[object]] = [list(HEADER)]
    for code, name, figures in rows:
        out.append([code, name, *(figures.get(key) for key, _ in COLUMNS)])
    return out


def as_csv(rows: Sequence[Row]) -> str:
    """The report as CSV (UTF-8 with BOM so spreadsheet programs show Chinese)."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    csv.writer(buffer).writerows(table(rows))
    return buffer.getvalue()


def as_xlsx(rows: Sequence[Row], title: str) -> bytes:
    """The report as an Excel workbook."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    for line in table(rows):
        sheet.append(line)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


QUALITY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("score", "综合得分 score"),
    ("communities", "社区数 communities"),
    ("closes_expected", "应报日报 closes expected"),
    ("closes_on_time", "按时日报 closes on time"),
    ("on_time_rate", "按时率 on-time rate"),
    ("closes_late", "迟报 late closes"),
    ("closes_missing", "未报 missing closes"),
    ("days_since_last_event", "距上次上报(天) days since last event"),
    ("never_reported", "从未上报社区 communities never reported"),
    ("events", "事件数 events"),
    ("late_share", "迟到事件占比 late share"),
    ("corrected_share", "更正占比 corrected share"),
    ("rejected", "拒收 rejected"),
    ("rejected_share", "拒收占比 rejected share"),
    ("case_reports", "病例报告 case reports"),
    ("case_in_limit_share", "时限内报告占比 case reports within limit"),
    ("case_lag_median_h", "报告时滞中位数(小时) median case lag h"),
    ("case_lag_p90_h", "报告时滞P90(小时) p90 case lag h"),
    ("zero_contradicted", "矛盾零报告 contradicted zero reports"),
    ("counts_differing", "申报数不符 declared counts differing"),
)


def quality_table(card: dict[str, Any]) -> list[list[object]]:
    """The scorecard as rows: the children, then the unit itself (the period in the header)."""
    period = f"{card['from']}..{card['to']}"
    out: list[list[object]] = [
        ["代码 code", "名称 name", "期间 period", *(title for _, title in QUALITY_COLUMNS)]
    ]
    for entry in [*card["children"], card["unit"]]:
        figures = entry["quality"]
        out.append(
            [entry["code"], entry["name"], period, *(figures[key] for key, _ in QUALITY_COLUMNS)]
        )
    return out


def quality_as_csv(card: dict[str, Any]) -> str:
    """The scorecard as CSV (UTF-8 with BOM)."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    csv.writer(buffer).writerows(quality_table(card))
    return buffer.getvalue()


def quality_as_xlsx(card: dict[str, Any]) -> bytes:
    """The scorecard as an Excel workbook."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = f"{card['unit']['code']} quality"[:31]
    for line in quality_table(card):
        sheet.append(line)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
