"""``python -m zhibao_cli`` is the ``zhibao`` command."""

from zhibao_cli.main import app

app()
