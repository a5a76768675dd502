"""DingTalk, WeCom and Feishu robots: the right body, signed as each platform checks it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlparse

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed
from tests.support.webhook import Receiver
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.domain.config import OnCall, Rules
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.raising import Routing
from zhibao_alerts.robots import dingtalk_url, feishu_body
from zhibao_shared.consumer import Delivery
from zhibao_shared.hierarchy import load_registry

SECRET = "SEC" + "x" * 40


async def test_each_robot_gets_its_format_and_a_valid_signature(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    oncall = OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": COMMUNITY,
                    "start": "2026-01-01T00:00:00+08:00",
                    "people": [
                        {
                            "name": "grid worker",
                            "dingtalk": {
                                "url": f"{webhook.url}/ding?access_token=t",
                                "secret": SECRET,
                            },
                            "wecom": {"url": f"{webhook.url}/wecom?key=k"},
                            "feishu": {"url": f"{webhook.url}/feishu", "secret": SECRET},
                        }
                    ],
                }
            ]
        }
    )
    routing = Routing(oncall, load_registry(), "http://aggregator")
    apply = ApplyEvents(engine, Rules, lambda: routing, "Asia/Shanghai", clock)

    async def no_nats(_s: str, _b: bytes) -> None:
        return None

    dispatcher = Dispatcher(engine, lambda: routing, no_nats, clock)
    await apply([Delivery(confirmed(), "s", 1, 1)])
    assert await dispatcher.tick() == 4  # three robots and NATS
    paths = {path.split("?")[0]: (path, body) for path, body in webhook.received}

    ding_path, ding = paths["/ding"]
    query = parse_qs(urlparse(ding_path).query)
    timestamp = query["timestamp"][0]
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"][0] == expected
    assert ding["msgtype"] == "markdown" and "确诊" in ding["markdown"]["text"]

    _path, wecom = paths["/wecom"]
    assert wecom["msgtype"] == "markdown" and "确诊" in wecom["markdown"]["content"]

    _path, feishu = paths["/feishu"]
    key = f"{feishu['timestamp']}\n{SECRET}".encode()
    assert feishu["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert feishu["msg_type"] == "text" and "确诊" in feishu["content"]["text"]


def test_signing_functions_match_the_platform_examples() -> None:
    url = dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=x", "s", 1000)
    assert url.startswith(
        "https://oapi.dingtalk.com/robot/send?access_token=x&timestamp=1000&sign="
    )
    body = feishu_body('{"msg_type": "text"}', "s", 1000)
    assert '"timestamp": "1000"' in body and '"msg_type": "text"' in body
