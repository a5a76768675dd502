"""Zhibao shared library: contracts and plumbing used by every service.

Nothing here makes a business decision; it defines what travels between
services (events, subjects, streams), how services are configured, and the
administrative hierarchy they all agree on.
"""

# The event contract first: zhibao_shared.care_events builds on it and events' unions
# include care_events' types, so whichever module a caller imports, events loads first.
from zhibao_shared import events as _events  # noqa: F401
