"""``python -m zhibao_aggregator``: the same as ``zhibao aggregator``."""

from zhibao_aggregator.cli import app

app(prog_name="zhibao-aggregator")
