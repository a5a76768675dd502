"""Fever clusters key on registered places, and a grid's alerts reach its grid worker
first, then the community's on-call, then the street (real webhook receivers)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, correction, published
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import OnCall
from zhibao_shared.events import PublishedEvent
from zhibao_shared.places import load_places

#: 枫林湾 3号楼 in the shipped places, and the grid it lies in.
COMPOUND = f"{COMMUNITY}-C001"
BUILDING = f"{COMPOUND}-B003"
GRID = f"{COMMUNITY}-G001"
START = "2026-01-01T00:00:00+08:00"


def rota(receiver: Receiver, **extra: Any) -> OnCall:
    """The community's and the street's on-call, and the grid worker of GRID, each on a
    webhook path of their own; the default escalation policies."""
    people = ((COMMUNITY, "community"), (COMMUNITY[:9], "street"))
    return OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": unit,
                    "start": START,
                    "people": [{"name": path, "webhook": f"{receiver.url}/{path}"}],
                }
                for unit, path in people
            ],
            "grid_workers": [{"grid": GRID, "webhook": f"{receiver.url}/grid"}],
            **extra,
        }
    )


def fever(pid: str, building: str, *, registered: bool = True) -> PublishedEvent:
    """A fever at 枫林湾 as intake publishes it: the labels as reported and, when they
    matched, the registered building, compound and grid."""
    data: dict[str, Any] = {
        "temperature_c": 38.5,
        "site": "household",
        "compound": "枫林湾小区",
        "building": building,
        "person": {"pid": pid},
    }
    if registered:
        data |= {"compound_id": COMPOUND, "building_id": BUILDING, "grid_id": GRID}
    return published("screening", data)


def paged(receiver: Receiver, path: str) -> list[str]:
    return [a["labels"]["alertname"] for body in receiver.bodies(path) for a in body["alerts"]]


async def test_labels_of_one_registered_building_are_one_cluster_named_by_its_name(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook, rota=rota(webhook), places=load_places())
    await world.send(fever("a" * 32, "3号楼"), fever("b" * 32, "3栋"), fever("c" * 32, "三号楼"))
    [alert] = await world.alerts()
    assert alert.rule == "fever_cluster" and alert.window.startswith(f"{BUILDING}:")
    assert "枫林湾 3号楼" in alert.summary_zh and "3 人发热" in alert.summary_zh
    assert "枫林湾 3号楼" in alert.summary_en and alert.grid == GRID


async def test_unregistered_labels_still_cluster_on_the_labels(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Labels no registered place matches: "3号楼" and "3栋" stay two places, as before."""
    world = World(engine, clock, webhook, rota=rota(webhook), places=load_places())
    await world.send(*(fever(p * 32, "3号楼", registered=False) for p in "ab"))
    await world.send(fever("c" * 32, "3栋", registered=False))
    assert await world.alerts() == []
    await world.send(fever("d" * 32, "3号楼", registered=False))
    [alert] = await world.alerts()
    assert alert.grid is None and "枫林湾小区/3号楼" in alert.summary_zh


async def test_a_grid_alert_pages_the_grid_worker_then_the_community_then_the_street(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """The default warning ladder with a grid: worker at once, community after 15
    minutes, street after 45."""
    world = World(engine, clock, webhook, rota=rota(webhook), places=load_places())
    await world.send(*(fever(p * 32, "3号楼") for p in "abc"))
    await world.dispatcher.tick()
    assert paged(webhook, "/grid") == ["fever_cluster"]
    assert paged(webhook, "/community") == [] and paged(webhook, "/street") == []
    clock.advance(minutes=15)
    await world.dispatcher.tick()
    assert paged(webhook, "/community") == ["fever_cluster"] and paged(webhook, "/street") == []
    clock.advance(minutes=30)
    await world.dispatcher.tick()
    assert paged(webhook, "/street") == ["fever_cluster"]
    assert len(paged(webhook, "/grid")) == 1, "each level paged once (no reminder yet)"
    grid_page = webhook.bodies("/grid")[0]["alerts"][0]
    assert grid_page["labels"]["grid"] == GRID
    worker = load_places().get(GRID)
    assert worker is not None and worker.worker is not None
    assert grid_page["annotations"]["grid_worker"] == worker.worker, "named by the registry"
    assert grid_page["annotations"]["grid_name"] == worker.name


async def test_a_grid_without_a_channel_pages_the_community_at_once(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Nobody reaches the grid's worker: the grid step is skipped and the ladder keeps
    today's timings (community at once, street after 30 minutes)."""
    config = rota(webhook).model_copy(update={"grid_workers": ()})
    world = World(engine, clock, webhook, rota=config, places=load_places())
    await world.send(*(fever(p * 32, "3号楼") for p in "abc"))
    await world.dispatcher.tick()
    assert paged(webhook, "/community") == ["fever_cluster"] and webhook.bodies("/grid") == []
    clock.advance(minutes=30)
    await world.dispatcher.tick()
    assert paged(webhook, "/street") == ["fever_cluster"]


async def test_a_community_channel_reaches_the_worker_of_each_of_its_grids(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    config = rota(webhook).model_copy(update={"grid_workers": ()})
    config = OnCall.model_validate(
        {
            **config.model_dump(mode="json", exclude={"grid_workers"}),
            "grid_workers": [{"community": COMMUNITY, "webhook": f"{webhook.url}/grids"}],
        }
    )
    world = World(engine, clock, webhook, rota=config, places=load_places())
    await world.send(*(fever(p * 32, "3号楼") for p in "abc"))
    await world.dispatcher.tick()
    assert paged(webhook, "/grids") == ["fever_cluster"] and webhook.bodies("/community") == []


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"grid_workers": [{"grid": GRID}]}, "needs a webhook"),
        ({"grid_workers": [{"grid": "640106001001-C001", "webhook": "http://x/y"}]}, "grid"),
        (
            {"grid_workers": [{"grid": GRID, "community": COMMUNITY, "webhook": "http://x/y"}]},
            "either a grid or a community",
        ),
        (
            {
                "escalation": {
                    "warning": {
                        "steps": [
                            {"level": "community", "after_minutes": 0},
                            {"level": "grid", "after_minutes": 5},
                        ]
                    }
                }
            },
            "only the first step",
        ),
    ],
)
def test_an_unusable_grid_configuration_is_refused(config: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        OnCall.model_validate(config)


async def test_a_corrected_cluster_still_names_its_registered_place(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook, rota=rota(webhook), places=load_places())
    fevers = [fever(p * 32, "3号楼") for p in "abcd"]
    await world.send(*fevers)
    await world.send(correction(fevers[0]))
    [alert] = await world.alerts()
    assert "枫林湾 3号楼" in alert.summary_zh and "3 人发热" in alert.summary_zh
