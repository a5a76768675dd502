"""The sheets communities keep, and how each row becomes events (pure: no I/O).

* ``screening`` 入户筛查登记表: one ``zhibao.screening.v1`` per row (door to door).
* ``isolation`` 隔离人员登记表 (roster): per row a ``start`` (kind, planned end), a
  ``check`` for each filled daily-check column (dated ``11月20日`` or ``第3天``; a
  temperature, or √ when checked without one; 外出 is a breach) and an ``end`` when the
  actual release is filled in.
* ``case`` 病例名单: one ``zhibao.case.v1`` per row (a person's classification).
* ``daily_report`` 日报登记表: one ``zhibao.daily_report.v1`` per row (a day closed, zero
  report or not, the declared counts).

Only the listed columns are read; names, phones and addresses never are.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from zhibao_client.import_rows import Draft, RowContext, SheetKind
from zhibao_client.sheet import (
    COLUMNS as SCREENING_COLUMNS,
)
from zhibao_client.sheet import (
    cell_text,
    normalise_header,
    parse_count,
    parse_date,
    parse_moment,
    parse_symptoms,
    parse_temperature,
    parse_time,
    parse_yes_no,
)

SCREENING, CASE, ISOLATION, DAILY = (
    "zhibao.screening.v1",
    "zhibao.case.v1",
    "zhibao.isolation.v1",
    "zhibao.daily_report.v1",
)

_PERSON = {
    **dict.fromkeys(["身份证号", "身份证号码", "身份证", "证件号码", "证件号"], "id_number"),
    **dict.fromkeys(["人员编号", "本地编号", "个人编号"], "ref"),
}
_PLACE = {
    **dict.fromkeys(["楼栋", "楼号", "楼栋号", "栋", "楼"], "building"),
    **dict.fromkeys(["小区", "小区名称", "所在小区", "院落"], "compound"),
}
_PERSON_PATHS = {"data.person": "id_number", "subject": ""}


def _now(row: RowContext) -> datetime:
    """A stand-in time while a row's own is wrong (lets the contract check the rest)."""
    return datetime.now(row.zone)


def _person(row: RowContext, required: bool) -> dict[str, str] | None:
    if "id_number" in row.values:
        return {"id_number": cell_text(row.values["id_number"])}
    if "ref" in row.values:
        return {"ref": cell_text(row.values["ref"])}
    if required:
        row.fail("id_number", "missing (or fill in a 人员编号 column)")
    return None


def _labels(row: RowContext, data: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in row.values:
            data[name] = cell_text(row.values[name])


# -- screenings ---------------------------------------------------------------------------


_NOT_A_TEMPERATURE = "not a temperature in °C, e.g. 36.8"


def _screening(row: RowContext) -> list[Draft]:
    data: dict[str, Any] = {"site": "door_to_door"}
    time_field = "time" if "time" in row.sheet_fields else "date"
    when = None
    try:
        when = parse_time(row.values.get("time"), row.values.get("date"), row.zone)
    except (TypeError, ValueError):
        row.fail(time_field, "not a date and time, e.g. 2026-11-25 08:30")
    temperature = row.parsed("temperature_c", parse_temperature, _NOT_A_TEMPERATURE)
    if temperature is not None:
        data["temperature_c"] = temperature
    row.require("temperature_c")
    for name, parse in (("symptoms", parse_symptoms), ("travel_from_risk_area", parse_yes_no)):
        value = row.parsed(name, parse, None)
        if value is not None:
            data[name] = value
    _labels(row, data, ("compound", "building", "grid"))
    person = _person(row, required=False)
    if person is not None:
        data["person"] = person
    return [Draft(SCREENING, when or _now(row), data, time_field)]


SCREENING_KIND = SheetKind(
    name="screening",
    label="入户筛查登记表 (screening sheet)",
    columns={**SCREENING_COLUMNS, **_PERSON},
    canonical={
        "id_number": "身份证号",
        "temperature_c": "体温",
        "building": "楼栋",
        "compound": "小区",
        "grid": "网格",
        "time": "检测时间",
        "date": "检测日期",
        "symptoms": "症状",
        "travel_from_risk_area": "是否来自风险地区",
    },
    identifying=("temperature_c",),
    required_any=(("time", "date"),),
    build=_screening,
    paths={
        **_PERSON_PATHS,
        "data.temperature_c": "temperature_c",
        "data.building": "building",
        "data.compound": "compound",
        "data.grid": "grid",
        "data.symptoms": "symptoms",
    },
)

# -- cases --------------------------------------------------------------------------------

CLASSIFICATIONS: dict[str, str] = {
    **dict.fromkeys(["疑似", "疑似病例"], "suspected"),
    **dict.fromkeys(["确诊", "确诊病例"], "confirmed"),
    **dict.fromkeys(["无症状", "无症状感染者", "无症状感染"], "asymptomatic"),
    **dict.fromkeys(["密接", "密切接触者", "密切接触"], "close_contact"),
    **dict.fromkeys(["排除", "排除疑似", "已排除"], "excluded"),
    **dict.fromkeys(["治愈", "治愈出院", "出院", "痊愈"], "recovered"),
    **dict.fromkeys(["死亡", "病亡"], "deceased"),
}


def parse_classification(value: Any) -> str:
    """确诊 → confirmed, 无症状感染者 → asymptomatic, … (ValueError otherwise)."""
    text = normalise_header(cell_text(value))
    if text not in CLASSIFICATIONS:
        raise ValueError("must be 疑似, 确诊, 无症状感染者, 密切接触者, 排除, 治愈 or 死亡")
    return CLASSIFICATIONS[text]


def _case(row: RowContext) -> list[Draft]:
    data: dict[str, Any] = {}
    person = _person(row, required=True)
    if person is not None:
        data["person"] = person
    classification = row.parsed("classification", parse_classification, None)
    row.require("classification")
    data["classification"] = classification or "suspected"
    when = row.parsed("time", lambda v: parse_moment(v, row.zone), _NOT_A_TIME)
    row.require("time")
    onset = row.parsed("onset_date", parse_date, _NOT_A_DATE)
    if onset is not None:
        data["onset_date"] = onset.isoformat()
    _labels(row, data, ("compound", "building"))
    return [Draft(CASE, when or _now(row), data, "time")]


_NOT_A_TIME = "not a date (and time), e.g. 2026-11-25 08:30"
_NOT_A_DATE = "not a date, e.g. 2026-11-25"

CASE_KIND = SheetKind(
    name="case",
    label="病例名单 (case list)",
    columns={
        **_PERSON,
        **_PLACE,
        **dict.fromkeys(
            ["分类", "病例分类", "病例类型", "病例类别", "诊断分类", "诊断结果"],
            "classification",
        ),
        **dict.fromkeys(
            [
                "诊断时间",
                "诊断日期",
                "确诊时间",
                "确诊日期",
                "分类时间",
                "报告时间",
                "报告日期",
                "订正时间",
            ],
            "time",
        ),
        **dict.fromkeys(["发病日期", "发病时间", "症状出现日期"], "onset_date"),
    },
    canonical={
        "id_number": "身份证号",
        "classification": "分类",
        "time": "诊断时间",
        "onset_date": "发病日期",
        "compound": "小区",
        "building": "楼栋",
    },
    # a screening sheet's 人员类别 (常住/流动) is not a classification: the diagnosis time
    # must be there too
    identifying=("classification", "time"),
    build=_case,
    paths={
        **_PERSON_PATHS,
        "data.classification": "classification",
        "data.onset_date": "onset_date",
        "data.compound": "compound",
        "data.building": "building",
    },
)

# -- isolation rosters --------------------------------------------------------------------

ISOLATION_KINDS: dict[str, str] = {
    **dict.fromkeys(["居家", "居家隔离", "居家观察", "居家医学观察", "居家健康监测"], "home"),
    **dict.fromkeys(["集中", "集中隔离", "集中观察", "集中医学观察", "集中隔离点"], "centralized"),
}
CHECKED = {"√", "✓", "已测", "已监测", "正常", "是", "已查"}
BREACH = {"外出", "违规外出", "擅自外出", "脱管", "违规"}
_CHECK_SUFFIX = "(?:体温|测温|监测|健康监测)?$"
_DATED = re.compile(r"^(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?" + _CHECK_SUFFIX)
_NTH_DAY = re.compile(r"^(?:隔离)?第(\d{1,2})天" + _CHECK_SUFFIX)
CHECK_PREFIX = "check:"


def dated_check(header: str) -> str | None:
    """A daily-check column's field from its header: ``check:2026-11-20``, ``check:11-20``
    (year from the isolation's start) or ``check:day3`` (the isolation's third day)."""
    if found := _NTH_DAY.match(header):
        return f"{CHECK_PREFIX}day{int(found[1])}" if int(found[1]) >= 1 else None
    if found := _DATED.match(header):
        year, month, day = found.groups()
        if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
            return None
        prefix = f"{int(year):04d}-" if year else ""
        return f"{CHECK_PREFIX}{prefix}{int(month):02d}-{int(day):02d}"
    return None


def parse_isolation_kind(value: Any) -> str:
    """居家 → home, 集中 → centralized (ValueError otherwise)."""
    text = normalise_header(cell_text(value))
    if text not in ISOLATION_KINDS:
        raise ValueError("must be 居家 or 集中")
    return ISOLATION_KINDS[text]


def parse_check(value: Any) -> tuple[str, float | None]:
    """A daily-check cell: a temperature → (check, °C); √ → (check, None); 外出 → (breach,
    None); ValueError otherwise."""
    text = cell_text(value)
    if text in CHECKED:
        return "check", None
    if text in BREACH:
        return "breach", None
    return "check", parse_temperature(value)


def check_day(field: str, start: date) -> date:
    """The day a daily-check column stands for, given the isolation's start."""
    spec = field.removeprefix(CHECK_PREFIX)
    if spec.startswith("day"):
        return start + timedelta(days=int(spec[3:]) - 1)
    if len(spec) == len("2026-11-20"):
        return date.fromisoformat(spec)
    month, day = (int(part) for part in spec.split("-"))
    found = date(start.year, month, day)
    # a roster running over the new year: December's start, January's checks
    return date(start.year + 1, month, day) if found < start - timedelta(days=31) else found


def _isolation(row: RowContext) -> list[Draft]:
    person = _person(row, required=True)
    kind = row.parsed("kind", parse_isolation_kind, None)
    row.require("kind")
    start = row.parsed("start", lambda v: parse_moment(v, row.zone), _NOT_A_DATE)
    row.require("start")
    until = row.parsed("until", parse_date, _NOT_A_DATE)
    base: dict[str, Any] = {"person": person or {"ref": "-"}, "kind": kind or "home"}
    begin = start or _now(row)
    start_data = {**base, "action": "start"} | ({"until": until.isoformat()} if until else {})
    drafts = [Draft(ISOLATION, begin, start_data, "start")]
    drafts += _checks(row, base, begin, start is not None)
    end = row.parsed("end", lambda v: parse_moment(v, row.zone), _NOT_A_DATE)
    if end is not None:
        latest = max((d.time for d in drafts), default=begin)
        if start is not None and end < start:
            row.fail("end", "lies before the isolation's start")
        at = max(end, latest + timedelta(minutes=1))
        drafts.append(Draft(ISOLATION, at, {**base, "action": "end"}, "end"))
        for draft in drafts[1:-1]:
            if draft.time.date() > end.date():
                row.fail(draft.time_field, "a check after the isolation ended")
    return drafts


def _checks(row: RowContext, base: dict[str, Any], start: datetime, known: bool) -> list[Draft]:
    """The row's filled daily-check columns as check (or breach) events, by day."""
    drafts: list[Draft] = []
    for field in sorted(f for f in row.values if f.startswith(CHECK_PREFIX)):
        found = row.parsed(field, parse_check, "a temperature (36.5), √ when checked, or 外出")
        if found is None or not known:
            continue
        day = check_day(field, start.date())
        if day < start.date():
            row.fail(field, "dated before the isolation started")
            continue
        at = max(datetime.combine(day, time(0), row.zone), start + timedelta(minutes=1))
        action, temperature = found
        data = {**base, "action": action}
        if temperature is not None:
            data["temperature_c"] = temperature
        drafts.append(Draft(ISOLATION, at, data, field))
    return sorted(drafts, key=lambda d: d.time)


ISOLATION_KIND = SheetKind(
    name="isolation",
    label="隔离人员登记表 (isolation roster)",
    columns={
        **_PERSON,
        **dict.fromkeys(["隔离方式", "隔离类型", "隔离形式", "管控方式", "隔离地点类型"], "kind"),
        **dict.fromkeys(
            [
                "开始隔离日期",
                "隔离开始日期",
                "开始隔离时间",
                "隔离开始时间",
                "隔离日期",
                "入住日期",
                "入住时间",
            ],
            "start",
        ),
        **dict.fromkeys(
            [
                "计划解除日期",
                "预计解除日期",
                "应解除日期",
                "计划解除隔离日期",
                "预计解除隔离日期",
                "解除隔离日期",
                "隔离期满日期",
            ],
            "until",
        ),
        **dict.fromkeys(
            ["实际解除日期", "实际解除隔离日期", "实际解除时间", "解除时间", "已解除日期"], "end"
        ),
    },
    canonical={
        "id_number": "身份证号",
        "kind": "隔离方式",
        "start": "开始隔离日期",
        "until": "计划解除日期",
        "end": "实际解除日期",
    },
    identifying=("kind", "start"),
    build=_isolation,
    paths={
        **_PERSON_PATHS,
        "data.kind": "kind",
        "data.until": "until",
    },
    extra_header=dated_check,
)

# -- daily closes -------------------------------------------------------------------------

COUNTS = ("screenings", "fevers", "new_suspected", "new_confirmed", "in_isolation")


def _daily(row: RowContext) -> list[Draft]:
    day = row.parsed("date", parse_date, _NOT_A_DATE)
    row.require("date")
    zero = row.parsed("zero", parse_yes_no, None)
    row.require("zero")
    data: dict[str, Any] = {"date": (day or _now(row).date()).isoformat(), "zero": bool(zero)}
    counts = {name: row.parsed(name, parse_count, None) for name in COUNTS}
    if any(v is not None for v in counts.values()):
        data["counts"] = {k: v for k, v in counts.items() if v is not None}
    when = row.parsed("time", lambda v: parse_moment(v, row.zone), _NOT_A_TIME)
    if when is None:  # closed at the end of the day (or now, for today's close)
        end = datetime.combine(day, time(0), row.zone) + timedelta(days=1) if day else None
        when = min(end, _now(row)) if end else _now(row)
    return [Draft(DAILY, when, data, "time" if "time" in row.values else "date")]


DAILY_KIND = SheetKind(
    name="daily_report",
    label="日报登记表 (daily closes)",
    columns={
        **dict.fromkeys(["日期", "报告日期", "统计日期", "日报日期", "填报日期"], "date"),
        **dict.fromkeys(["是否零报告", "零报告", "是否零报"], "zero"),
        **dict.fromkeys(["排查人次", "筛查人次", "排查人数", "筛查人数"], "screenings"),
        **dict.fromkeys(["发热人数", "发热"], "fevers"),
        **dict.fromkeys(["新增疑似", "新增疑似病例"], "new_suspected"),
        **dict.fromkeys(["新增确诊", "新增确诊病例"], "new_confirmed"),
        **dict.fromkeys(["隔离人数", "在隔离人数", "隔离观察人数"], "in_isolation"),
        **dict.fromkeys(["上报时间", "报送时间", "填报时间"], "time"),
    },
    canonical={
        "date": "日期",
        "zero": "是否零报告",
        "screenings": "排查人次",
        "fevers": "发热人数",
        "new_suspected": "新增疑似",
        "new_confirmed": "新增确诊",
        "in_isolation": "隔离人数",
        "time": "上报时间",
    },
    identifying=("date", "zero"),
    build=_daily,
    paths={"data.date": "date", **{f"data.counts.{c}": c for c in COUNTS}, "subject": ""},
    time_in_id=False,
)

#: Detection order: the first kind whose identifying columns a header row has.
KINDS: tuple[SheetKind, ...] = (ISOLATION_KIND, CASE_KIND, DAILY_KIND, SCREENING_KIND)
KIND_NAMES = tuple(k.name for k in KINDS)
