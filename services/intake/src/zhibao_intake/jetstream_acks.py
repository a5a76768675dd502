"""A JetStream context whose ``publish_async`` futures also end when JetStream refuses.

nats-py (2.16) leaves the future of an asynchronous publish pending for ever when
JetStream answers it with an error (a full stream's "maximum bytes exceeded", a
stream gone): its reply handler calls ``APIError.from_error``, which raises instead
of returning the error, so the future is never given it (nats-io/nats.py#985, fix
proposed in #994). Intake then waited out the whole publish timeout and answered
every event of that publish "unavailable", also those the stream had stored.
"""

from __future__ import annotations

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext


class RefusalAwareJetStream(JetStreamContext):
    """Sets a refusal on its publish's future, as a fixed nats-py will."""

    async def _handle_async_reply(self, msg: Msg) -> None:
        try:
            await super()._handle_async_reply(msg)
        except nats.js.errors.APIError as refusal:
            future = self._publish_async_futures.get(self._reply_token(msg))
            if future is not None and not future.done():
                future.set_exception(refusal)

    def _reply_token(self, msg: Msg) -> str:
        """The key of the publish's future: the reply subject after the inbox prefix, a
        22-character unique id and their two dots (as nats-py's handler reads it)."""
        return msg.subject[len(self._nc._inbox_prefix) + 22 + 2 :]
