"""Starting the system for the simulator's tests: nats-server and the named services as
processes (as ``zhibao up`` runs them), in a fresh data directory with tokens made there."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zhibao_cli.stack import Stack
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore

#: A token to make: its name → (scopes, role).
TokenSpec = tuple[list[str], Role]


@contextmanager
def running(
    root: Path, names: tuple[str, ...], tokens: dict[str, TokenSpec]
) -> Iterator[tuple[Stack, dict[str, str]]]:
    """The running stack of ``names`` (with nats) and the secrets of ``tokens``, by name."""
    data = root / "data"
    env = {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(data),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_PSEUDONYM_KEY": secrets.token_urlsafe(48),
    }
    env |= {f"ZHIBAO_{name.upper()}_PORT": str(free_port()) for name in names}
    store = TokenStore.in_data_dir(data)
    secrets_by_name: dict[str, str] = {}
    for name, (scopes, role) in tokens.items():
        _record, secrets_by_name[name] = store.create(scopes=scopes, role=role, name=name)
    store.close()
    stack = Stack(
        env=env,
        data_dir=data,
        nats_url=env["ZHIBAO_NATS_URL"],
        names=names,
        log_dir=root / "logs",
    )
    with stack:
        yield stack, secrets_by_name
