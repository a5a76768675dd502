"""Fixtures shared by the whole suite."""

from tests.support.nats import nats_server

__all__ = ["nats_server"]
