"""Masking notification targets wherever they could be shown (API answers, errors, logs).

A chat robot's URL carries its credential (DingTalk ``access_token``, WeCom ``key``,
the token path of a Feishu hook, a signed request's ``sign``); a webhook URL may carry
userinfo or a token in its query; an e-mail address identifies a person. None of them
is returned or logged in full, to any role: what is shown is enough to tell targets
apart (scheme, host, the path without long tokens, and a short fingerprint).
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

MASK = "***"
#: A path segment this long (or a query value of any length) is taken for a credential.
LONG_SEGMENT = 16
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
#: A query parameter's value, or a long path segment, even without a scheme before it
#: (a receiver's error message may quote the path it was called on).
_QUERY_VALUE = re.compile(r"([?&][A-Za-z0-9_.\-]+=)[^&\s'\"<>,}]+")
_LONG_SEGMENT = re.compile(rf"/[A-Za-z0-9_\-]{{{LONG_SEGMENT},}}")
_EMAIL = re.compile(r"[^\s@'\"<>:/]+@[^\s@'\"<>/]+\.[A-Za-z]{2,}")


def target_id(target: str) -> str:
    """A short fingerprint of a target: the same target always gets the same one."""
    return hashlib.sha256(target.encode()).hexdigest()[:10]


def mask_target(channel: str, target: str) -> str:
    """The target as it may be shown: NATS subjects as they are, the rest masked."""
    if channel == "nats":
        return target
    if channel == "email":
        return mask_email(target)
    return mask_url(target)


def mask_email(address: str) -> str:
    """``w***@example.org``: the first character and the domain."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{MASK}@{domain}" if domain else MASK


def mask_url(url: str) -> str:
    """Scheme, host and port, the path with long segments masked, every query value masked;
    userinfo and fragment dropped."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    path = "/".join(
        MASK if len(segment) >= LONG_SEGMENT else segment for segment in parts.path.split("/")
    )
    query = "&".join(f"{pair.partition('=')[0]}={MASK}" for pair in parts.query.split("&") if pair)
    return f"{parts.scheme}://{host}{port}{path}" + (f"?{query}" if query else "")


def mask_text(text: str | None, targets: tuple[str, ...] = ()) -> str | None:
    """Free text (a delivery error, a receiver's answer) with every URL, query value,
    long path segment and e-mail address in it masked, and the given raw targets too."""
    if text is None:
        return None
    for target in targets:
        if target:
            shown = mask_url(target) if "://" in target else mask_email(target)
            text = text.replace(target, shown)
    text = _URL.sub(lambda m: mask_url(m.group(0)), text)
    text = _QUERY_VALUE.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _LONG_SEGMENT.sub(f"/{MASK}", text)
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
