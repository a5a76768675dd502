"""Signing chat-robot requests at send time (the secrets never enter the database).

* DingTalk custom robot: ``sign = base64(HMAC-SHA256(secret, f"{timestamp_ms}\\n{secret}"))``
  appended to the URL as ``&timestamp=…&sign=…`` (URL-encoded).
* Feishu bot: ``sign = base64(HMAC-SHA256(key=f"{timestamp_s}\\n{secret}", msg=b""))``
  put into the JSON body with ``timestamp``.
* WeCom group robot: unsigned (the key is part of the URL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import quote_plus


def dingtalk_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The DingTalk webhook URL with timestamp and signature."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest).decode())
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp_ms}&sign={sign}"


def feishu_body(payload: str, secret: str, timestamp_s: int) -> str:
    """The Feishu body with timestamp and signature added."""
    key = f"{timestamp_s}\n{secret}".encode()
    sign = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    return json.dumps(
        {"timestamp": str(timestamp_s), "sign": sign, **json.loads(payload)}, ensure_ascii=False
    )


def robot_error(channel: str, body: bytes) -> str | None:
    """A robot's own error inside an HTTP 200 answer (errcode / code not 0), if any."""
    if channel not in ("dingtalk", "wecom", "feishu"):
        return None
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        return None
    code = answer.get("errcode", answer.get("code", 0)) if isinstance(answer, dict) else 0
    return None if code in (0, None) else f"robot error {code}: {answer}"[:300]
