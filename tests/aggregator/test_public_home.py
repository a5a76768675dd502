"""Where the public page starts: the city (the top unit below the province), or a
configured unit (``ZHIBAO_PUBLIC_HOME``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.security.public_stack import running_aggregator
from zhibao_aggregator.public_page import home_unit
from zhibao_shared.hierarchy import Level, Registry, Unit, load_registry
from zhibao_shared.natsserver import NatsServer


def test_the_public_page_starts_at_the_city_below_the_province() -> None:
    assert home_unit(load_registry()) == "6401"


def test_a_registry_without_province_or_city_starts_at_its_first_district() -> None:
    registry = Registry(
        [
            Unit(code="640106", name="金凤区", level=Level.DISTRICT),
            Unit(code="640106001", name="街道", level=Level.STREET, parent="640106"),
        ]
    )
    assert home_unit(registry) == "640106"


def test_a_configured_home_must_be_a_registered_unit() -> None:
    assert home_unit(load_registry(), "640106") == "640106"
    with pytest.raises(ValueError, match="640199"):
        home_unit(load_registry(), "640199")


@pytest.mark.integration
def test_public_redirects_to_the_configured_home(nats_server: NatsServer, tmp_path: Path) -> None:
    with running_aggregator(nats_server, tmp_path, public_home="640106") as aggregator:
        answer = httpx.get(f"{aggregator.url}/public")
    assert answer.status_code == 307
    assert answer.headers["location"] == "/public/640106"
