"""Every line a service process writes has resident IDs and phone numbers masked
(structlog, uvicorn, libraries)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.events import resident_id

NUMBER = resident_id(seq=909)
PHONE = "13912345678"

#: A process configured as every service is (``configure_logging``, then uvicorn's own
#: logging configuration), serving a route that fails with an ID number in the error.
SCRIPT = textwrap.dedent(
    f"""
    import logging, threading, httpx, structlog, uvicorn
    from fastapi import FastAPI
    from zhibao_shared.natsserver import free_port
    from zhibao_shared.observability import configure_logging
    from zhibao_shared.settings import ZhibaoSettings

    configure_logging(ZhibaoSettings(log_json=True, log_level="INFO"), service="probe")
    app = FastAPI()

    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("cannot parse {NUMBER}, call +86 139-1234-5678")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    thread = threading.Thread(target=server.run)
    thread.start()
    while not server.started:
        pass
    httpx.get(f"http://127.0.0.1:{{port}}/fail?id={NUMBER}&tel={PHONE}")
    structlog.get_logger().warning("payload", record={{"events": [{{"id": "case-{NUMBER}"}}]}})
    structlog.get_logger().warning("reason", text="患者(电话{PHONE}, 座机0951-1234567)")
    logging.getLogger("nats.aio.client").warning("reconnect for %s", "{NUMBER}")
    logging.getLogger("nats.aio.client").warning("dialled %s", "１３９１２３４５６７８")
    server.should_exit = True
    thread.join(20)
    """
)


def test_no_line_of_a_service_process_shows_an_id_number(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Exception in ASGI application" in output, "uvicorn logged the failure"
    assert "cannot parse [redacted-id], call [phone]" in output, "with its traceback"
    assert "GET /fail?id=[redacted-id]&tel=[phone]" in output, "and the access line"
    assert '"case-[redacted-id]"' in output, "nested structlog fields"
    assert "reconnect for [redacted-id]" in output, "library warnings"
    assert "患者(电话[phone], 座机[phone])" in output, "phone numbers in structlog fields"
    assert "dialled [phone]" in output, "full-width digits in library warnings"
    assert NUMBER not in output
    assert PHONE not in output
    assert "0951-1234567" not in output
