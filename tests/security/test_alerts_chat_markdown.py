"""Attack: a reporter names the compound and building of fever screenings with markdown
and markup, so that the cluster alert posted to the on-call groups carries a phishing
link, an image, a fake heading, formatting and an @-everyone. Now reporters' text is
shown literally: the robots receive no link, image, heading, HTML or mention from it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.alerts.conftest import published
from tests.alerts.service_process import publish, running_alerts, wait_for
from tests.support.webhook import Receiver
from zhibao_shared.natsserver import NatsServer

COMMUNITY = "640106001001"
COMPOUND = '[点此处理](http://evil.example/p) <at user_id="all">所有人</at> @all'
BUILDING = "# 紧急 **速看** ![x](https://evil.example/i.png) <font>x</font>"
AGGREGATOR = "http://127.0.0.1:8102"


def _oncall(webhook: Receiver) -> str:
    person = {
        "name": "grid worker",
        "dingtalk": {"url": f"{webhook.url}/ding?access_token=t"},
        "wecom": {"url": f"{webhook.url}/wecom?key=k"},
        "feishu": {"url": f"{webhook.url}/feishu"},
    }
    rotation = {"unit": COMMUNITY, "start": "2026-01-01T00:00:00+08:00", "people": [person]}
    return json.dumps({"rotations": [rotation]})


def _fevers() -> list[object]:
    at = datetime.now(UTC) - timedelta(minutes=10)
    data = {"temperature_c": 38.6, "site": "household", "compound": COMPOUND}
    return [published("screening", {**data, "building": BUILDING}, when=at) for _ in range(3)]


def test_reporters_text_cannot_inject_markdown_into_robot_messages(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    with running_alerts(tmp_path, nats_server, _oncall(webhook)) as alerts:
        publish(alerts.nats_url, _fevers())  # type: ignore[arg-type]

        def received() -> list[tuple[str, str]]:
            texts: list[tuple[str, str]] = []
            for path, body in webhook.received:
                if path.startswith("/ding"):
                    markdown = body["markdown"]
                    texts.append(("dingtalk", f"{markdown['title']}\n{markdown['text']}"))
                elif path.startswith("/wecom"):
                    texts.append(("wecom", body["markdown"]["content"]))
                elif path.startswith("/feishu"):
                    texts.append(("feishu", body["content"]["text"]))
            return texts

        def clusters() -> set[str]:
            return {channel for channel, text in received() if "点此处理" in text}

        wait_for(lambda: clusters() == {"dingtalk", "wecom", "feishu"}, timeout_s=60)
    for channel, text in received():
        # one link per alert: a robot's message merges whatever is due for it, so at some
        # hours the cluster comes with another alert (yesterday's, e.g. a missing daily
        # report after the 09:00 deadline), each with its own link
        links = re.findall(r"\]\(([^)]*)\)", text)
        assert links and all(link.startswith(AGGREGATOR) for link in links), (channel, links)
        assert "![" not in text and "evil.example" not in text, channel
        assert "<" not in text and ">" not in text, (channel, "no HTML, no <at>, no <font>")
        assert "**" not in text and "@" not in text, channel
        headings = [line for line in text.splitlines() if line.lstrip().startswith("#")]
        assert all(line.startswith("### 【") for line in headings), (channel, headings)
