"""schemathesis against the aggregator's, alerts' and response's OpenAPI specs: no 5xx,
schema-conformant."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.openapi import check_openapi_conformance
from zhibao_cli.stack import Stack
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    data: Path = tmp_path_factory.mktemp("openapi")
    env = {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(data),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_ALERTS_PORT": str(free_port()),
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
        "ZHIBAO_LOG_LEVEL": "WARNING",
    }
    # a personal token: acknowledging and silencing refuse shared ones before validating
    token = TokenStore.in_data_dir(data).create(
        scopes=["6401"], role=Role.OPERATE, person="张伟 (值班员)"
    )[1]
    with Stack(
        env=env,
        data_dir=data,
        nats_url=env["ZHIBAO_NATS_URL"],
        names=("aggregator", "alerts", "response"),
        quiet=True,
    ) as running:
        yield running, token


@pytest.mark.parametrize("service", ["aggregator", "alerts", "response"])
def test_service_honours_its_openapi_spec(stack: tuple[Stack, str], service: str) -> None:
    running, token = stack
    checked = check_openapi_conformance(
        running.url(service), {"Authorization": f"Bearer {token}"}, max_examples=30
    )
    assert any("/v1/" in operation for operation in checked)
