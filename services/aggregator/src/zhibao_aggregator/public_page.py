"""The public bulletin page (公开疫情通报): the released figures as HTML, no token.

Rendered on the server from the same release as the JSON summary: no script,
no external resource, one hashed inline style, so the content security
policy allows nothing else.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import date
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse

from zhibao_aggregator.domain.public import MEDIUM_OR_HIGH, UNDISCLOSED
from zhibao_aggregator.public_summary import PublicSummaries
from zhibao_shared.hierarchy import CODE_PREFIX, Level, Registry

STYLE = (
    "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:1.5rem;color:#1a1a1a}"
    "table{border-collapse:collapse;margin-top:1rem}"
    "th,td{border:1px solid #bbb;padding:.35rem .6rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    ".total{font-weight:bold;background:#f3f3f3}.note{color:#555;max-width:48rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

#: Columns of the table: (figure, Chinese, English).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("new_confirmed", "新增确诊", "new confirmed"),
    ("current_confirmed", "现有确诊", "current confirmed"),
    ("cumulative_confirmed", "累计确诊", "cumulative confirmed"),
    ("new_closed", "新增结案", "closed (recovered, died or reclassified)"),
    ("days_without_new_case", "连续无新增天数", "days without a new case"),
    ("risk_level", "风险等级", "risk level"),
)
RISK = {
    "low": "低风险 low",
    "medium": "中风险 medium",
    "high": "高风险 high",
    MEDIUM_OR_HIGH: "中高风险 medium or high",
    UNDISCLOSED: "不公布 not disclosed",
}
SUPPRESSED = "<abbr title='不足阈值或可推算，不公布 small count, not published'>*</abbr>"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return SUPPRESSED if value["suppressed"] else str(value["value"])
    if value is None:
        return "—"
    return escape(RISK.get(str(value), str(value)))


def _row(entry: dict[str, Any], *, total: bool = False) -> str:
    name = escape(f"{entry['name']} {entry['name_en']}")
    link = name if total else f"<a href='/public/{escape(entry['code'])}'>{name}</a>"
    cells = "".join(f"<td>{_cell(entry['figures'].get(key))}</td>" for key, _, _ in COLUMNS)
    return f"<tr{' class=total' if total else ''}><td>{link}</td>{cells}</tr>"


def render(summary: dict[str, Any]) -> str:
    """The bulletin page of one released summary."""
    head = "".join(f"<th>{zh}<br><small>{en}</small></th>" for _, zh, en in COLUMNS)
    rows = "".join(_row(child) for child in summary["children"])
    title = escape(f"{summary['name']} 疫情通报 {summary['date']}")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{STYLE}</style></head><body>
<h1>{title}</h1>
<p>{escape(summary["date"])} 的数据，于 {escape(summary["released_at"])} 发布，每日发布一次。
Figures of {escape(summary["date"])}, released {escape(summary["released_at"])}, once a day.</p>
<form method="get"><label>日期 date <input type="date" name="date"
value="{escape(summary["date"])}"></label> <button>查看 show</button></form>
<table><thead><tr><th>地区 area</th>{head}</tr></thead><tbody>
{_row(summary, total=True)}{rows}</tbody></table>
<p class="note">* 少于 {summary["threshold"]} 例的数字及可据以推算的数字不公布。
Counts from 1 to {summary["threshold"] - 1}, and counts that would give them away, are not
published. 新增 = newly reported since the previous release.</p>
</body></html>"""


def home_unit(registry: Registry, configured: str | None = None) -> str:
    """Where ``/public`` starts: the configured unit, else the top unit below the province
    (the city; the first district of a registry without a city)."""
    if configured is not None:
        if configured not in registry:
            raise ValueError(f"the public page's home {configured} is not in the registry")
        return configured
    for level in Level:
        units = registry.at_level(level)
        if units and level is not Level.PROVINCE:
            return units[0].code
    raise ValueError("the registry holds no unit below the province")


def build_public_page(summaries: PublicSummaries, home: str | None = None) -> APIRouter:
    """``/public`` (the city, or ``home``) and ``/public/{code}``: the bulletin page."""
    router = APIRouter(tags=["public"])
    start = home_unit(summaries.reader.registry, home)

    @router.get("/public", include_in_schema=False)
    async def first_page() -> RedirectResponse:
        return RedirectResponse(f"/public/{start}")

    @router.get(
        "/public/{code}",
        summary="The public bulletin page of a unit (HTML)",
        response_class=HTMLResponse,
        responses={
            404: {"description": "Unknown unit, no public summary at its level, or not released"}
        },
    )
    async def page(
        code: Annotated[str, PathParam(pattern=CODE_PREFIX)],
        date: Annotated[date | None, Query(description="Day of a past release")] = None,
    ) -> HTMLResponse:
        summary = await summaries.summary(code, date)
        return HTMLResponse(
            render(summary), headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
        )

    return router
