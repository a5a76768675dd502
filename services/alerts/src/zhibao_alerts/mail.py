"""The email channel: a plain-text message over SMTP (STARTTLS and login when configured)."""

from __future__ import annotations

import json
from email.message import EmailMessage

import aiosmtplib

from zhibao_alerts.domain.config import Smtp


async def send_email(smtp: Smtp, recipient: str, payload: str, timeout_s: float = 10) -> None:
    """Send one alert email; raises on any SMTP failure (the outbox retries)."""
    body = json.loads(payload)
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = recipient
    message["Subject"] = body["subject"]
    message.set_content(body["text"])
    await aiosmtplib.send(
        message,
        hostname=smtp.host,
        port=smtp.port,
        start_tls=smtp.starttls,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        timeout=timeout_s,
    )
