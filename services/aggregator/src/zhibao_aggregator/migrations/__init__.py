"""Alembic migrations of the aggregator schema (run with ``zhibao aggregator migrate``)."""
