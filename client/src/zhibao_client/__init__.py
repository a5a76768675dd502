"""Zhibao community client: submit CloudEvents to intake, never losing one.

from zhibao_client import ZhibaoClient

client = ZhibaoClient("http://intake:8101", token, spool_path="spool.db")
report = client.submit(events)     # spooled (fsync'd) first, then sent
report.rejected                    # events intake refused, with field errors
client.drain_until_empty(60)       # later: send what is still spooled
"""

from zhibao_client.client import Rejection, RequestRefused, SubmitReport, ZhibaoClient
from zhibao_client.spool import Spool

__all__ = ["Rejection", "RequestRefused", "Spool", "SubmitReport", "ZhibaoClient"]
