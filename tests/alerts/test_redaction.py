"""What may be shown of a notification target, and chat text made inert."""

from __future__ import annotations

import pytest

from zhibao_alerts.domain.chat_text import inert
from zhibao_alerts.domain.redaction import mask_target, mask_text, target_id


@pytest.mark.parametrize(
    ("channel", "target", "shown"),
    [
        (
            "dingtalk",
            "https://oapi.dingtalk.com/robot/send?access_token=0123abcd",
            "https://oapi.dingtalk.com/robot/send?access_token=***",
        ),
        (
            "wecom",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
        ),
        (
            "feishu",
            "https://open.feishu.cn/open-apis/bot/v2/hook/2f6d1c3e-aaaa-bbbb-cccc-0123456789ab",
            "https://open.feishu.cn/open-apis/bot/v2/hook/***",
        ),
        (
            "webhook",
            "https://ops:hunter2@hooks.example.org:8443/alerts?token=t#frag",
            "https://hooks.example.org:8443/alerts?token=***",
        ),
        ("email", "duty.officer@example.org", "d***@example.org"),
        ("nats", "zhibao.alerts.critical.640106", "zhibao.alerts.critical.640106"),
    ],
)
def test_targets_are_shown_without_their_credentials(channel: str, target: str, shown: str) -> None:
    assert mask_target(channel, target) == shown


def test_targets_stay_distinguishable_by_fingerprint() -> None:
    first = "https://oapi.dingtalk.com/robot/send?access_token=a"
    second = "https://oapi.dingtalk.com/robot/send?access_token=b"
    assert mask_target("dingtalk", first) == mask_target("dingtalk", second)
    assert target_id(first) != target_id(second)


def test_errors_quoting_urls_paths_or_addresses_are_masked() -> None:
    error = (
        "HTTPStatusError: Client error '404 Not Found' for url "
        "'https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1&sign=x%2B' "
        "(sent to /ding?access_token=abc) mail to duty@example.org"
    )
    masked = mask_text(error) or ""
    assert "abc" not in masked and "x%2B" not in masked and "duty@" not in masked
    assert "access_token=***&timestamp=***&sign=***" in masked
    assert mask_text(None) is None


def test_chat_text_keeps_the_words_and_drops_the_markup() -> None:
    shown = inert('[看](http://evil.example/x)\n# 标题 **粗** <at user_id="all"></at> @所有人 38.5')
    assert "看" in shown and "标题" in shown and "38.5" in shown
    for markup in ("[", "](", "http://", "evil.example", "\n", "#", "**", "<", "@"):
        assert markup not in shown, markup
