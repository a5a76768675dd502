"""Builders of task results (``zhibao.task_result.v1``) as a community submits them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.events import COMMUNITY_A

_ids = itertools.count(1)


def task_result(
    task: str,
    community: str = COMMUNITY_A,
    *,
    outcome: str = "done",
    method: str = "visit",
    event_id: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A valid task result for ``task`` reported by ``community``."""
    return {
        "specversion": "1.0",
        "id": event_id or f"result-{next(_ids)}",
        "source": f"/{community}/worker-app",
        "type": "zhibao.task_result.v1",
        "subject": community,
        "time": (datetime.now(UTC) - timedelta(seconds=30)).isoformat(),
        "data": {"task": task, "outcome": outcome, "method": method, **data},
    }
