"""One daily-report deadline: ZHIBAO_DAILY_REPORT_DEADLINE is both the dashboard's
"overdue" and the alerts service's missing-report alert; a rules file that says
otherwise is refused. And no default assumes one province."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, published
from tests.alerts.test_lifecycle import NO_ABERRATION, World
from tests.alerts.test_time_rules import rows
from tests.support.webhook import Receiver
from zhibao_aggregator.bootstrap import reader
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_alerts.config_files import ConfigError, Watched
from zhibao_alerts.domain.config import OnCall, Rules
from zhibao_alerts.raising import Routing
from zhibao_alerts.settings import AlertsSettings
from zhibao_alerts.watchdog import Watchdog
from zhibao_shared.db import make_engine, run_migrations, sqlite_url
from zhibao_shared.hierarchy import load_registry

COMMUNITY = "640106001001"
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def _dashboard_due(settings: AggregatorSettings, day_offset: int) -> datetime:
    """The aggregator's ``reports_due_at`` of a day still ahead (its rollup figures)."""
    url = sqlite_url(settings.data_dir, "aggregator")
    await run_migrations(url, "zhibao_aggregator")
    engine = make_engine(url)
    try:
        day = datetime.now(SHANGHAI).date() + timedelta(days=day_offset)
        figures = await reader(settings, engine).figures(COMMUNITY[:9], day)
    finally:
        await engine.dispose()
    due = figures["reports_due_at"]
    assert isinstance(due, str)
    return datetime.fromisoformat(due)


async def test_the_dashboard_and_the_alerts_share_the_daily_report_deadline(
    engine: AsyncEngine,
    clock: Clock,
    webhook: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZHIBAO_DAILY_REPORT_DEADLINE", "PT20H")  # the same day, 20:00
    dashboard = AggregatorSettings(data_dir=tmp_path / "agg")
    alerts_settings = AlertsSettings(data_dir=tmp_path / "alerts")
    due = await _dashboard_due(dashboard, 2)
    assert due.astimezone(SHANGHAI).hour == 20

    # the community is active and has closed every day up to the one before
    today = datetime.now(SHANGHAI).date()
    world = World(engine, clock, webhook)
    await world.send(
        published("screening", {"temperature_c": 36.5, "site": "gate"}, community=COMMUNITY),
        *(
            published("daily_report", {"date": str(today + timedelta(days=n)), "zero": True})
            for n in (-1, 0, 1)
        ),
    )
    routing = Routing(OnCall(), load_registry(), "http://aggregator")
    dog = Watchdog(
        engine,
        lambda: NO_ABERRATION,
        lambda: routing,
        alerts_settings.timezone,
        clock,
        report_deadline=alerts_settings.daily_report_deadline,
    )
    clock.now = due.astimezone(UTC) - timedelta(seconds=1)
    await dog.tick()
    assert await rows(engine, "missing_daily_report") == [], "not due yet on the dashboard"
    clock.now = due.astimezone(UTC)
    await dog.tick()
    day = str(due.astimezone(SHANGHAI).date())
    assert await rows(engine, "missing_daily_report") == [(day, "firing")]


def test_a_rules_file_with_another_deadline_is_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    deadline = AlertsSettings(daily_report_deadline="P1DT9H").daily_report_deadline
    rules.write_text("silence: {report_due_hours: 33}\n")
    agreeing = Watched(Rules, rules, "rules.yaml", lambda r: r.deadline_conflict(deadline))
    assert agreeing.current.silence.report_due_hours == 33
    rules.write_text("silence: {report_due_hours: 24}\n")
    with pytest.raises(ConfigError, match="report_due_hours: 24 disagrees"):
        Watched(Rules, rules, "rules.yaml", lambda r: r.deadline_conflict(deadline))


def test_the_deprecated_aggregator_variable_still_sets_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZHIBAO_REPORT_DUE_AFTER", "PT22H")
    assert AggregatorSettings().daily_report_deadline == timedelta(hours=22)
    assert AlertsSettings().daily_report_deadline == timedelta(hours=22)


HUBEI = """\
units:
  - {code: '4201', name: 武汉市, name_en: Wuhan, level: city, parent: null}
  - {code: '420106', name: 武昌区, name_en: Wuchang, level: district, parent: '4201'}
  - {code: '420106001', name: 积玉桥街道, name_en: Jiyuqiao, level: street, parent: '420106'}
  - {code: '420106001001', name: 和平社区, name_en: Heping, level: community,
     parent: '420106001', households: 3000, population: 7000}
"""


async def test_a_response_period_without_units_covers_every_province(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, tmp_path: Path
) -> None:
    registry = tmp_path / "hubei.yaml"
    registry.write_text(HUBEI)
    community = "420106001001"
    clock.advance(hours=-22)  # events may not lie in the (real) future
    world = World(engine, clock, webhook)
    quiet_since = clock.now - timedelta(hours=7)
    await world.send(
        published(
            "screening",
            {"temperature_c": 36.5, "site": "gate"},
            community=community,
            when=quiet_since,
        )
    )
    rules = Rules.model_validate(
        {
            "aberration": {"methods": []},
            "silence": {
                "no_events_hours": 6,
                "response_periods": [{"start": (clock.now - timedelta(days=1)).isoformat()}],
            },
        }
    )
    routing = Routing(OnCall(), load_registry(registry), "http://aggregator")
    dog = Watchdog(engine, lambda: rules, lambda: routing, "Asia/Shanghai", clock)
    await dog.tick()
    assert [s for _w, s in await rows(engine, "no_events")] == ["firing"]
