"""Chat robots' messages: packed per receiving robot, and paced within its rate limit.

DingTalk and WeCom group robots accept about 20 messages a minute each (beyond that
they answer an error and the message is lost to the group), and each message has a
size limit. So the notifications due for one robot go out together, whatever their
unit and rule: packed into as few messages as the size limit allows, at most the
robot's messages per minute; what does not fit into this minute waits for the next.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from datetime import datetime, timedelta

#: The channels whose receivers are chat-group robots.
ROBOT_CHANNELS = frozenset({"dingtalk", "wecom", "feishu"})
#: The most bytes of text one message carries, a little under each platform's limit
#: (WeCom markdown: 4096 bytes; DingTalk: 20000; Feishu: a 20 KB request body).
MESSAGE_BYTES = {"wecom": 4000, "dingtalk": 18000, "feishu": 18000}
#: What joining two alerts' texts adds (the separator between them).
SEPARATOR_BYTES = 8
#: The span a robot's rate limit counts messages over.
WINDOW = timedelta(minutes=1)


def pack(sizes: Sequence[int], budget: int) -> list[list[int]]:
    """Indexes of ``sizes`` (bytes of each alert's text) in messages of at most ``budget``
    bytes, in order; an alert larger than the budget goes alone."""
    messages: list[list[int]] = []
    used = budget + 1  # start a new message on the first item
    for index, size in enumerate(sizes):
        if messages and used + SEPARATOR_BYTES + size <= budget:
            messages[-1].append(index)
            used += SEPARATOR_BYTES + size
        else:
            messages.append([index])
            used = size
    return messages


class RateWindow:
    """The messages sent to each robot over the last minute (a sliding window).

    Pure bookkeeping: the caller passes its clock's time.
    """

    def __init__(self) -> None:
        self._sent: defaultdict[str, deque[datetime]] = defaultdict(deque)

    def room(self, robot: str, limit: int, now: datetime) -> int:
        """How many more messages ``robot`` may be sent now."""
        sent = self._recent(robot, now)
        return max(0, limit - len(sent))

    def take(self, robot: str, count: int, now: datetime) -> None:
        """Record ``count`` messages sent to ``robot`` at ``now``."""
        self._sent[robot].extend([now] * count)

    def next_room(self, robot: str, limit: int, now: datetime) -> datetime:
        """When ``robot`` may next be sent a message: ``now`` while there is room, else
        when enough of the last minute's messages have left the window."""
        sent = self._recent(robot, now)
        if len(sent) < limit:
            return now
        return sent[len(sent) - limit] + WINDOW

    def _recent(self, robot: str, now: datetime) -> deque[datetime]:
        sent = self._sent[robot]
        while sent and sent[0] + WINDOW <= now:
            sent.popleft()
        return sent
