"""Fixtures shared by the whole suite."""

from tests.support.intake import intake, intake_overrides
from tests.support.nats import nats_server
from tests.support.postgres import postgres_server, postgres_url
from tests.support.webhook import webhook

__all__ = [
    "intake",
    "intake_overrides",
    "nats_server",
    "postgres_server",
    "postgres_url",
    "webhook",
]
