"""Report templates (报表模板): a table a district or city department defines once (pure).

A template names the level of its rows (the units of that level under the unit it is
filled for), its columns (rollup figures, with headings in the department's own words),
the day or range it covers and whether a totals row closes it. Every unit's copy then
fills itself from the rollups. Validation here needs no I/O; what depends on the
registry (the owner unit) is checked by :func:`check_against`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain import points as pt
from zhibao_aggregator.domain import tasks as t
from zhibao_aggregator.domain.risk import RiskRule
from zhibao_aggregator.domain.rollup import CounterSnapshot, figures
from zhibao_shared.hierarchy import CODE_LENGTH, Level, Registry

#: Longest range a template (or a fill's from/to) may cover.
MAX_RANGE_DAYS = 92
TEMPLATE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
#: Placeholders a title may use, each written bare: {unit}, {code}, {date}.
TITLE_FIELDS = frozenset({"unit", "code", "date"})
#: What a title's braces may be: a bare placeholder, or {{ and }} for a literal brace (as
#: ``str.format`` read them). Filling substitutes these and nothing else: a title is never
#: given to ``str.format``, whose format specs ({unit:>500000000}) build any size of string.
_TITLE_TOKEN = re.compile(r"\{\{|\}\}|\{(" + "|".join(sorted(TITLE_FIELDS)) + r")\}")
#: Every brace of a title: a pair, a braced field, or a lone brace.
_BRACED = re.compile(r"\{\{|\}\}|\{[^{}]*\}|[{}]")
_ALLOWED = (
    f"only the placeholders {', '.join('{' + name + '}' for name in sorted(TITLE_FIELDS))} "
    "are allowed, written bare (no format spec, conversion, attribute or index; {{ and }} "
    "write a brace)"
)
#: The first characters that make a spreadsheet program read a cell as a formula (OWASP's
#: list for CSV injection). Titles, headings and labels may not begin with them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The control characters a workbook cell cannot hold (openpyxl's ILLEGAL_CHARACTERS_RE:
#: C0 but tab, line feed and carriage return, which a two-line heading uses): refused in
#: texts; the reports drop them from texts stored before (see :data:`STORED`).
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_CONTROL = re.compile(CONTROL_CHARACTERS)
#: The validation context of templates read back from the database: what was stored is
#: not refused for the text rules above (a version before them let it in). Filling
#: never formats the title and the reports write every text as text, so such a title or
#: heading comes out literally.
STORED: dict[str, bool] = {"stored": True}
Value = int | float | str | None
FigureRow = dict[str, Value]


def _rollup_names() -> tuple[str, ...]:
    """Every figure name a rollup carries: what :func:`rollup.figures` derives from the
    counters (all of ``metrics``' flows, stocks and cumulative figures, and the derived
    ones), plus the epidemic point and task figures the reader adds."""
    empty = CounterSnapshot({}, {}, 0, None, 0, 0)
    derived = figures(date(2000, 1, 1), empty, RiskRule(14, 1, 10))
    return (*derived, *pt.point_figures([]), *t.FIGURES)


#: The figures a template column may name (a rollup's own names).
FIGURES: frozenset[str] = frozenset(_rollup_names())
#: Figures that add up over the days of a range (what happened each day). Every other
#: figure is a level or a state and is taken on the range's last day.
SUMMED_OVER_DAYS: frozenset[str] = frozenset(
    {
        *m.FLOWS,
        *m.RELEASES_DUE,
        t.TASKS_DONE,
        t.TASKS_UNREACHABLE,
        "isolation_checks_missed",
        "reports_expected",
        "reports_missing",
        "reports_overdue",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("stored"))


def _cell_text(value: str | None, info: ValidationInfo) -> str | None:
    """``value``, unless it begins like a spreadsheet formula (see FORMULA_STARTS) or
    holds a control character (a workbook cannot hold most of them)."""
    if value is None or _stored(info):
        return value
    if value.startswith(FORMULA_STARTS):
        raise ValueError(
            "must not begin with =, +, -, @, a tab or a carriage return "
            "(a spreadsheet program would take it for a formula)"
        )
    control = _CONTROL.search(value)
    if control:
        raise ValueError(
            f"must not contain control characters (U+{ord(control[0]):04X} at "
            f"{control.start()}): a spreadsheet cell cannot hold them"
        )
    return value


def title_problem(title: str) -> str | None:
    """What is wrong with the braces of a title, or None: each must be a bare placeholder
    ({unit}, {code}, {date}) or a pair ({{, }})."""
    for match in _BRACED.finditer(title):
        token = match[0]
        if token in ("{{", "}}") or token[1:-1] in TITLE_FIELDS:
            continue
        if len(token) == 1:
            near = title[max(0, match.start() - 10) : match.end() + 10]
            return f"a lone {token} (in {near!r}); {_ALLOWED}"
        name = re.split(r"[:!.\[]", token[1:-1], maxsplit=1)[0]
        if name in TITLE_FIELDS:
            return f"placeholder {token} is not bare; {_ALLOWED}"
        return f"unknown placeholder {token}; {_ALLOWED}"
    return None


class LastDays(_Strict):
    """The ``last_days`` complete days before today (``including_today``: ending today)."""

    last_days: int = Field(ge=1, le=MAX_RANGE_DAYS)
    including_today: bool = False


class OneDay(_Strict):
    """One explicit day."""

    date: date


class DayRange(_Strict):
    """An explicit range of days (both ends included)."""

    from_: date = Field(alias="from")
    to: date

    @model_validator(mode="after")
    def _ordered(self) -> DayRange:
        check_range(self.from_, self.to)
        return self


def _period_form(value: object) -> str | None:
    if isinstance(value, str):
        return "day"
    if isinstance(value, dict):
        return next((tag for key, tag in _FORM_OF_KEY.items() if key in value), None)
    forms: dict[type, str] = {LastDays: "last_days", OneDay: "date", DayRange: "range"}
    return forms.get(type(value))


_FORM_OF_KEY = {"last_days": "last_days", "date": "date", "from": "range", "to": "range"}
Period = Annotated[
    Annotated[Literal["today", "yesterday"], Tag("day")]
    | Annotated[LastDays, Tag("last_days")]
    | Annotated[OneDay, Tag("date")]
    | Annotated[DayRange, Tag("range")],
    Discriminator(
        _period_form,
        custom_error_type="period_form",
        custom_error_message="must be today, yesterday, {last_days: N}, {date: YYYY-MM-DD} "
        "or {from: YYYY-MM-DD, to: YYYY-MM-DD}",
    ),
]


def check_range(first: date, last: date) -> None:
    """ValueError unless ``first`` <= ``last`` and the range is at most MAX_RANGE_DAYS."""
    if last < first:
        raise ValueError("'to' lies before 'from'")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValueError(f"a range covers at most {MAX_RANGE_DAYS} days")


def days_of(period: Period, today: date) -> tuple[date, date]:
    """The first and last day a period covers, seen on ``today`` (district time)."""
    if period == "today":
        return today, today
    if period == "yesterday":
        yesterday = today - timedelta(days=1)
        return yesterday, yesterday
    if isinstance(period, LastDays):
        last = today if period.including_today else today - timedelta(days=1)
        return last - timedelta(days=period.last_days - 1), last
    if isinstance(period, OneDay):
        return period.date, period.date
    assert isinstance(period, DayRange)
    return period.from_, period.to


class Column(_Strict):
    """A column: a rollup figure under the department's own heading."""

    figure: str = Field(description="A rollup figure's name, e.g. new_confirmed")
    heading: str = Field(min_length=1, max_length=64, description="The column's heading")

    @field_validator("figure")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FIGURES:
            raise ValueError(
                f"unknown figure {value!r}; a rollup figure such as screenings, fevers, "
                f"new_confirmed, in_isolation (all: GET /v1/templates/figures)"
            )
        return value

    @field_validator("heading")
    @classmethod
    def _heading_text(cls, value: str, info: ValidationInfo) -> str:
        _cell_text(value, info)
        return value


class ReportTemplate(_Strict):
    """A report template as written in a YAML file or posted to ``/v1/templates``."""

    id: str = Field(pattern=TEMPLATE_ID_PATTERN, description="Lower-case letters, digits, - _")
    title: str = Field(
        min_length=1,
        max_length=200,
        description="The table's title; the bare placeholders {unit}, {code} and {date} "
        "are filled in",
    )
    rows: Level = Field(
        description="The level of the rows: the units of that level under "
        "the unit the table is filled for, in registry order"
    )
    for_level: Level | None = Field(
        default=None,
        alias="for",
        description="Only units of this level fill it (e.g. street); any level above rows if "
        "absent",
    )
    unit: str | None = Field(
        default=None,
        pattern=r"^\d{4}(\d{2}(\d{3})?)?$",
        description="The department's unit (owner): only units within it fill the template "
        "and only tokens whose scope meets it see it; everyone when absent",
    )
    period: Period = Field(
        default="today",
        description="today, yesterday, {last_days: N[, including_today: true]}, "
        "{date: D} or {from: D, to: D}",
    )
    name_heading: str = Field(default="单位", min_length=1, max_length=64)
    code_heading: str | None = Field(
        default=None, min_length=1, max_length=64, description="A code column when given"
    )
    columns: Annotated[list[Column], Field(min_length=1, max_length=100)]
    totals: bool = True
    totals_label: str = Field(default="合计", min_length=1, max_length=64)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("rows")
    @classmethod
    def _below_the_top(cls, value: Level) -> Level:
        if value is Level.CITY:
            raise ValueError("must be district, street or community (the rows lie below a unit)")
        return value

    @field_validator("title")
    @classmethod
    def _placeholders(cls, value: str, info: ValidationInfo) -> str:
        wrong = None if _stored(info) else title_problem(value)
        if wrong:
            raise ValueError(wrong)
        return value

    @field_validator("title", "name_heading", "code_heading", "totals_label")
    @classmethod
    def _texts(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _cell_text(value, info)

    @model_validator(mode="after")
    def _consistent(self) -> ReportTemplate:
        headings = [c.heading for c in self.columns]
        repeated = sorted({h for h in headings if headings.count(h) > 1})
        if repeated:
            raise ValueError(f"columns: heading(s) used twice: {', '.join(repeated)}")
        if self.for_level is not None and not _above(self.for_level, self.rows):
            raise ValueError(f"for: a {self.for_level} lies not above its rows ({self.rows})")
        if self.unit is not None and len(self.unit) >= CODE_LENGTH[self.rows]:
            raise ValueError(f"unit: {self.unit} has no {self.rows} rows below it")
        return self

    def visible_to(self, scopes: Sequence[str]) -> bool:
        """True when a token with these scopes may see the template: it has no owner, or a
        scope lies within the owner's unit or contains it."""
        owner = self.unit
        return owner is None or any(s.startswith(owner) or owner.startswith(s) for s in scopes)

    def fills_for(self, code: str, level: Level) -> str | None:
        """Why the unit ``code`` (of ``level``) cannot fill the template, or None."""
        if self.unit is not None and not code.startswith(self.unit):
            return f"template {self.id} belongs to unit {self.unit}; {code} is not within it"
        if self.for_level is not None and level is not self.for_level:
            return f"template {self.id} is filled for a {self.for_level}, {code} is a {level}"
        if not _above(level, self.rows):
            return f"template {self.id} lists {self.rows} rows; {code} is a {level}"
        return None


def _above(upper: Level, lower: Level) -> bool:
    return CODE_LENGTH[upper] < CODE_LENGTH[lower]


def check_against(template: ReportTemplate, registry: Registry) -> str | None:
    """What is wrong with the template in this registry (its owner unit), or None."""
    if template.unit is not None and template.unit not in registry:
        return f"unknown unit {template.unit}"
    return None


def combine(days: Sequence[FigureRow]) -> FigureRow:
    """A range's figures from its days' rollups (oldest first): flows summed, the rest
    (levels, states) as on the last day."""
    out: FigureRow = dict(days[-1])
    for name in SUMMED_OVER_DAYS & out.keys():
        out[name] = sum(int(day.get(name) or 0) for day in days)
    return out


def chinese_day(day: date) -> str:
    """2026年11月25日."""
    return f"{day.year}年{day.month}月{day.day}日"


def title_of(template: ReportTemplate, unit_name: str, code: str, first: date, last: date) -> str:
    """The template's title with its placeholders filled: each bare {unit}, {code}, {date}
    replaced (once: a unit's name is not read for placeholders), {{ and }} made single
    braces; anything else (a stored title's {unit:>9}) stays as written."""
    when = chinese_day(first) if first == last else f"{chinese_day(first)}至{chinese_day(last)}"
    values = {"unit": unit_name, "code": code, "date": when}
    return _TITLE_TOKEN.sub(lambda m: values[m[1]] if m[1] else m[0][0], template.title)
