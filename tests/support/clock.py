"""Times for tests whose "now" must lie well inside the local day.

The services count "today" in the district's calendar, Asia/Shanghai, whose midnight is
16:00 UTC: an event placed minutes or hours before the real now falls on the previous
local day when a test runs shortly after that midnight.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from zhibao_bench.page_timing import earlier_today

SHANGHAI = ZoneInfo("Asia/Shanghai")

__all__ = ["SHANGHAI", "earlier_today", "latest_local_midday"]


def latest_local_midday(now: datetime | None = None) -> datetime:
    """The latest 12:00 Asia/Shanghai at or before ``now`` (default: the real now), in UTC.

    A test that places events hours before "now" and reads "today" would otherwise see
    them fall on the previous local day when it runs just after local midnight.
    """
    local = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    midday = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if midday > local:
        midday -= timedelta(days=1)
    return midday.astimezone(UTC)
