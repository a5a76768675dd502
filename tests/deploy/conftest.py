"""Fixtures of the deployment tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.support import make_certs


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates made by the shipped deploy/nats/tls/make-certs.sh (once per session)."""
    return make_certs(tmp_path_factory.mktemp("certs"))
