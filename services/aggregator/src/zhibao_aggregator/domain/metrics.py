"""Names of the counters the aggregator maintains per (unit, day, metric).

Two kinds of counter are stored, both as per-day values:

* **flows**: what happened that day (screenings, new confirmed, checks...);
  a rollup reads them with one lookup.
* **stock deltas** (``STOCKS``): the day's change of a level such as current
  confirmed or people in isolation; the level on day D is the sum of the
  deltas up to D (one indexed range sum over maintained counters, never a
  scan of events).
"""

from __future__ import annotations

from zhibao_shared.events import Classification, IsolationKind, Site

SCREENINGS = "screenings"
FEVERS = "fevers"
TRAVEL_FLAGGED = "travel_flagged"
SITE_METRICS = {site: f"screenings_{site.value}" for site in Site}

#: Classifications that are "current" while they are a person's latest one.
CURRENT_CLASSES = (
    Classification.SUSPECTED,
    Classification.CONFIRMED,
    Classification.ASYMPTOMATIC,
    Classification.CLOSE_CONTACT,
)


def new_metric(classification: Classification) -> str:
    """Persons classified this way for the first time that day."""
    return f"new_{classification.value}"


def current_metric(classification: Classification) -> str:
    """Persons whose latest classification is this one (a stock)."""
    return f"current_{classification.value}"


NEW_CONFIRMED = new_metric(Classification.CONFIRMED)

IN_ISOLATION = "in_isolation"
ISOLATION_STARTED = "isolation_started"
ISOLATION_ENDED = "isolation_ended"
ISOLATION_CHECKS = "isolation_checks"
#: Persons in isolation since before the day who were checked that day.
ISOLATION_CHECKED_DUE = "isolation_checked_due"
ISOLATION_BREACHES = "isolation_breaches"
#: Persons still in isolation at the end of the day although their planned end had passed.
ISOLATIONS_OVERDUE = "isolations_overdue"
ISOLATION_KINDS: tuple[str, ...] = tuple(kind.value for kind in IsolationKind)


def release_due_metric(kind: str) -> str:
    """Persons now in ``kind`` isolation planned to be released that day (a snapshot of
    the current isolations by planned end day, not a flow)."""
    return f"isolation_release_due_{kind}"


RELEASES_DUE: tuple[str, ...] = tuple(release_due_metric(kind) for kind in ISOLATION_KINDS)

REPORTS_RECEIVED = "reports_received"
REPORTS_ON_TIME = "reports_on_time"
REPORTS_LATE = "reports_late"
REPORTS_ZERO = "reports_zero"

EVENTS = "events"
LATE_EVENTS = "late_events"
#: Corrections applied to the unit's events, counted on the corrected event's day.
CORRECTIONS = "corrections"

STOCKS: tuple[str, ...] = (
    *(current_metric(c) for c in CURRENT_CLASSES),
    IN_ISOLATION,
    ISOLATIONS_OVERDUE,
)
#: Flows whose running total up to a day is reported as a cumulative figure.
CUMULATIVE_OF: dict[str, str] = {
    "cumulative_confirmed": NEW_CONFIRMED,
    "cumulative_recovered": new_metric(Classification.RECOVERED),
    "cumulative_deceased": new_metric(Classification.DECEASED),
}
SUMMED: tuple[str, ...] = (*STOCKS, *CUMULATIVE_OF.values())

FLOWS: tuple[str, ...] = (
    EVENTS,
    LATE_EVENTS,
    SCREENINGS,
    FEVERS,
    TRAVEL_FLAGGED,
    *SITE_METRICS.values(),
    *(new_metric(c) for c in Classification),
    ISOLATION_STARTED,
    ISOLATION_ENDED,
    ISOLATION_CHECKS,
    ISOLATION_CHECKED_DUE,
    ISOLATION_BREACHES,
    REPORTS_RECEIVED,
    REPORTS_ON_TIME,
    REPORTS_LATE,
    REPORTS_ZERO,
    CORRECTIONS,
)

#: Case reports of a reportable class (suspected, confirmed, asymptomatic), counted on the
#: day of their ``time``; with how many reached intake within the statutory limit and a
#: histogram of their lag (``case_lag_le_<minutes>``). Quality counters, not rollup figures.
CASE_REPORTS = "case_reports"
CASE_REPORTS_IN_LIMIT = "case_reports_in_limit"
#: Upper bounds (minutes) of the lag histogram's buckets; the last bucket is open.
CASE_LAG_BOUNDS_MIN: tuple[int, ...] = (
    15, 30, 60, 90, 120, 180, 240, 360, 480, 720, 1080, 1440, 2160, 2880, 4320, 10080,
)  # fmt: skip
CASE_LAG_OVER = "case_lag_over"
CASE_LAG_BUCKETS: tuple[str, ...] = (
    *(f"case_lag_le_{bound}" for bound in CASE_LAG_BOUNDS_MIN),
    CASE_LAG_OVER,
)
