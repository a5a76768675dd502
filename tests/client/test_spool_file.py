"""The spool holds events before intake pseudonymises them (residents' ID numbers in the
clear): its files are readable by their owner only, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support.events import resident_id
from zhibao_client.spool import Spool


def test_the_spool_and_its_journal_are_the_owners_alone(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # a usual umask: new files world-readable
    try:
        spool = Spool(tmp_path / "spool.db")
        spool.add(
            [
                {
                    "id": "e-1",
                    "source": "/s",
                    "subject": "640106001001",
                    "data": {"person": {"id_number": resident_id()}},
                }
            ]
        )
    finally:
        os.umask(previous)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("spool.db")]
    assert {p.name for p in files} >= {"spool.db", "spool.db-wal"}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == dict.fromkeys(
        (p.name for p in files), 0o600
    )


def test_a_spool_made_before_is_made_the_owners_alone(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    os.chmod(old, 0o644)
    Spool(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
