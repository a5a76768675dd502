"""Zhibao shared library: contracts and plumbing used by every service.

Nothing here makes a business decision; it defines what travels between
services (events, subjects, streams), how services are configured, and the
administrative hierarchy they all agree on.
"""
