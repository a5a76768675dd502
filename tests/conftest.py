"""Fixtures shared by the whole suite."""

from tests.support.intake import intake
from tests.support.nats import nats_server

__all__ = ["intake", "nats_server"]
