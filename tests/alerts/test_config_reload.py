"""A rules file with an unknown name is refused on load and on hot reload: the running
service says so, keeps paging with the rules it had, and sends no event to the dead
letters."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import nats
import pytest

from tests.alerts.conftest import confirmed, fever
from tests.alerts.service_process import publish, running_alerts, wait_for
from tests.support.webhook import Receiver
from zhibao_alerts.config_files import ConfigError, Watched
from zhibao_alerts.domain.config import Rules
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import DEAD_LETTER_STREAM

GOOD = "aberration: {methods: [C1, C2, C3], metrics: [fevers, suspected]}\n"
#: Each file names one unknown thing: where it is, and the name as written.
UNKNOWN = {
    "method": ("aberration: {methods: [C1, c2]}\n", "aberration.methods.1", "'c2'"),
    "metric": ("aberration: {metrics: [fevers, fever]}\n", "aberration.metrics.1", "'fever'"),
    "level": ("aberration: {levels: [community, City]}\n", "aberration.levels.1", "'City'"),
    "classification": ("immediate: {confirm: critical}\n", "immediate", "'confirm'"),
}
#: ``c2`` for ``C2``: today accepted, then every fever batch crashes the consumer.
BAD = "aberration: {methods: [C1, c2], metrics: [fevers, suspected]}\n"


def _dead_letters(nats_url: str) -> int:
    async def count() -> int:
        client = await nats.connect(nats_url)
        try:
            info = await client.jetstream().stream_info(DEAD_LETTER_STREAM)
            return int(info.state.messages)
        finally:
            await client.close()

    return asyncio.run(count())


def test_a_rules_file_with_an_unknown_method_is_refused_on_reload_and_paging_goes_on(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD)

    def configure(env: dict[str, str]) -> None:
        env["ZHIBAO_ALERTS_RULES_PATH"] = str(rules)
        env["ZHIBAO_ALERTS_RELOAD_S"] = "0.2"

    oncall = json.dumps({"webhooks": [f"{webhook.url}/all"]})
    with running_alerts(tmp_path, nats_server, oncall, before_start=configure) as alerts:
        rules.write_text(BAD)
        wait_for(lambda: "config_refused_keeping_previous" in alerts.log.read_text())
        refusal = [line for line in alerts.log.read_text().splitlines() if "config_refused" in line]
        assert "aberration.methods.1" in refusal[0] and "'c2'" in refusal[0]
        metrics = httpx.get(f"{alerts.url}/metrics", timeout=10).text
        assert 'zhibao_alerts_config_refused{file="rules.yaml"} 1.0' in metrics

        publish(alerts.nats_url, [fever(), confirmed()])

        def paged() -> list[str]:
            return [a["labels"]["alertname"] for b in webhook.bodies("/all") for a in b["alerts"]]

        wait_for(lambda: "immediate_confirmed" in paged())
        assert _dead_letters(alerts.nats_url) == 0, "no event was parked as undeliverable"


@pytest.mark.parametrize("kind", UNKNOWN)
def test_a_rules_file_naming_an_unknown_thing_is_refused_with_its_name(
    tmp_path: Path, kind: str
) -> None:
    text, where, name = UNKNOWN[kind]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as refused:
        Watched(Rules, bad, "rules.yaml")
    assert where in str(refused.value) and name in str(refused.value)

    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD)
    watched = Watched(Rules, rules, "rules.yaml")
    rules.write_text(text)
    later = rules.stat().st_mtime + 5
    os.utime(rules, (later, later))
    assert not watched.reload_if_changed()
    assert watched.current.aberration.methods == ("C1", "C2", "C3"), "the old rules stay"
    assert watched.last_error is not None and name in watched.last_error
