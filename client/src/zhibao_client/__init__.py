"""Zhibao community client: submit CloudEvents to intake, never losing one.

from zhibao_client import ZhibaoClient

client = ZhibaoClient("http://intake:8101", token, spool_path="spool.db")
report = client.submit(events)     # spooled first, then sent
report.rejected                    # events intake refused, with reasons
client.drain()                     # later: send what is still spooled
"""

from zhibao_client.client import SubmitReport, ZhibaoClient
from zhibao_client.spool import Spool

__all__ = ["Spool", "SubmitReport", "ZhibaoClient"]
