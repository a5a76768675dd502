"""A service starts only on a database at its migrations' head: one a migration behind
(new code started before ``zhibao <service> migrate``) is refused at start-up with the
migrations it lacks and the command that adds them, instead of failing later at the
first statement that needs them; one migrated by a newer version still starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from zhibao_aggregator.bootstrap import create_app as aggregator_app
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_alerts.bootstrap import create_app as alerts_app
from zhibao_alerts.settings import AlertsSettings
from zhibao_response.bootstrap import create_app as response_app
from zhibao_response.settings import ResponseSettings
from zhibao_shared.db import Unmigrated, make_engine, require_migrated, run_migrations


@dataclass(frozen=True)
class Service:
    """A service with a database: its name, migrations' package, settings and app."""

    name: str
    package: str
    settings: Callable[[Path], Any]
    app: Callable[[Any], FastAPI]


SERVICES = [
    Service(
        "aggregator",
        "zhibao_aggregator",
        lambda data: AggregatorSettings(data_dir=data, _env_file=None),
        aggregator_app,
    ),
    Service(
        "alerts",
        "zhibao_alerts",
        lambda data: AlertsSettings(data_dir=data, _env_file=None),
        alerts_app,
    ),
    Service(
        "response",
        "zhibao_response",
        lambda data: ResponseSettings(data_dir=data, _env_file=None),
        response_app,
    ),
]


async def _revisions(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return list(
                (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            )
    finally:
        await engine.dispose()


async def _starts(service: Service, settings: Any) -> None:
    """Run the app's start-up (it raises when the service refuses the database)."""
    async with service.app(settings).router.lifespan_context(FastAPI()):
        pass


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
async def test_a_database_a_migration_behind_is_refused_with_the_command_that_fixes_it(
    service: Service, tmp_path: Path
) -> None:
    settings = service.settings(tmp_path / "data")
    url = settings.database_url()
    remedy = f"run `zhibao {service.name} migrate` first"
    with pytest.raises(Unmigrated, match=f"no {service.name} schema: {remedy}"):
        await _starts(service, settings)

    await run_migrations(url, service.package)
    [head] = await _revisions(url)
    await require_migrated(url, service.package, service.name)

    await run_migrations(url, service.package, downgrade_to="-1")
    with pytest.raises(Unmigrated) as refused:
        await _starts(service, settings)
    message = str(refused.value)
    assert f"lacks the migrations {head}" in message
    assert remedy in message

    await run_migrations(url, service.package)
    await require_migrated(url, service.package, service.name)


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
async def test_a_database_migrated_by_a_newer_version_is_let_through(
    service: Service, tmp_path: Path
) -> None:
    url = service.settings(tmp_path / "data").database_url()
    await run_migrations(url, service.package)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_later'"))
    finally:
        await engine.dispose()
    await require_migrated(url, service.package, service.name)
