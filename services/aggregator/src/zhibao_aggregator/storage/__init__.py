"""Persistence: SQLAlchemy 2 (async) tables, the batch writer and the read queries."""
