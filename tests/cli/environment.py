"""The environment of a ``zhibao up`` run in a test: its own data directory and free ports."""

from __future__ import annotations

import os
from pathlib import Path

from zhibao_shared.natsserver import free_port


def stack_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment with a fresh data dir and free NATS and service ports."""
    return {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(tmp_path / "data"),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_INTAKE_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_ALERTS_PORT": str(free_port()),
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
    }
