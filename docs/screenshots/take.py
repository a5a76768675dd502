"""Take the command centre's screenshots for the docs from a real ``zhibao up --demo``.

Run from the repository root::

    uv run python docs/screenshots/take.py

It starts ``zhibao up --demo`` as a subprocess on free ports with a throw-away
data directory, waits until the simulator has posted its two weeks (stderr line
``demo: done.``) and the alert rules have fired, then opens the signed-in link
printed in the banner in Debian's Chromium (headless, 1440×900) and saves:

* ``01-district.png``: the district (金凤区) overview, in Chinese;
* ``02-street.png``: the outbreak street (黄河东路街道) drilled down;
* ``03-alerts.png``: the outbreak community's alert panel, firing alerts and one
  acknowledged with the page's 确认 button;
* ``04-english.png``: the district overview in English.

Finally the system is stopped with SIGTERM (the demo's tokens are revoked then).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from playwright.sync_api import Locator, Page, ViewportSize, expect, sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
MAX_PNG_BYTES = 400_000
TIMEOUT_MS = 20_000

CITY = "6401"
DISTRICT = "640106"  # 金凤区
STREET = "640106001"  # 黄河东路街道, the street of the outbreak
COMMUNITY = "640106001002"  # 悦湖社区 (compound 未来城), the outbreak community

STARTUP_TIMEOUT_S = 120.0
DEMO_TIMEOUT_S = 300.0
ALERTS_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
SETTLED_POLLS = 8  # polled every 0.5 s: unchanged for about 4 s

BANNER_LINK = re.compile(r"command centre:\s+(http://\S+#token=(\S+))")
DEMO_DONE = "demo: done."


STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr, with the seconds since the script started."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition`` every half second; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


@dataclass
class Demo:
    """``zhibao up --demo`` running as a child process, its output followed line by line."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    link: str = ""
    token: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    linked: threading.Event = field(default_factory=threading.Event)

    def follow(self, stream: IO[str]) -> None:
        """Read one of the child's pipes to its end, noting the banner link and the end."""
        for line in stream:
            self.lines.append(line.rstrip())
            found = BANNER_LINK.search(line)
            if found:
                self.link, self.token = found.group(1), found.group(2)
                self.linked.set()
            if line.lstrip("\r").startswith(DEMO_DONE):
                self.done.set()

    def wait_for(self, event: threading.Event, what: str, timeout_s: float) -> None:
        """Wait for ``event``; fail if the child exits first or the time runs out."""
        wait_until(what, lambda: event.is_set() or self.process.poll() is not None, timeout_s)
        if not event.is_set():
            tail = "\n".join(self.lines[-30:])
            raise RuntimeError(f"zhibao up exited ({self.process.returncode}):\n{tail}")

    @property
    def base_url(self) -> str:
        """The aggregator's root (the command centre) without the sign-in fragment."""
        return self.link.split("#", 1)[0].rstrip("/")


@contextmanager
def running_demo(data_dir: Path, alerts_port: int) -> Iterator[Demo]:
    """Start ``zhibao up --demo`` on free ports; stop it with SIGTERM afterwards."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ZHIBAO_DATA_DIR": str(data_dir),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_INTAKE_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_ALERTS_PORT": str(alerts_port),
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
        # The aggregator's alert panel proxies to ZHIBAO_ALERTS_URL, which `zhibao up`
        # does not derive from ZHIBAO_ALERTS_PORT (it would reach the default port 8103).
        "ZHIBAO_ALERTS_URL": f"http://127.0.0.1:{alerts_port}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "zhibao_cli", "up", "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    demo = Demo(process)
    readers = [
        threading.Thread(target=demo.follow, args=(pipe,), daemon=True)
        for pipe in (process.stdout, process.stderr)
    ]
    for reader in readers:
        reader.start()
    try:
        yield demo
    except BaseException:
        say("failed; the last lines of zhibao up:\n" + "\n".join(demo.lines[-40:]))
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for reader in readers:
            reader.join(timeout=5)
        say(f"zhibao up stopped (exit code {process.returncode})")


def open_alerts(demo: Demo, alerts_port: int, unit: str) -> list[dict[str, object]]:
    """Firing and acknowledged alerts at or below ``unit`` from the alerts service."""
    answer = httpx.get(
        f"http://127.0.0.1:{alerts_port}/v1/alerts",
        params=[("unit", unit), ("state", "firing"), ("state", "acknowledged")],
        headers={"authorization": f"Bearer {demo.token}"},
        timeout=10,
    )
    answer.raise_for_status()
    alerts: list[dict[str, object]] = answer.json()["alerts"]
    return alerts


def wait_for_alerts(demo: Demo, alerts_port: int) -> None:
    """Wait until the outbreak community has firing alerts (an EARS one among them) and
    the district's open alerts have stopped changing (rules re-evaluated as the last
    days arrived raise and resolve alerts for a while after the demo is done)."""

    def fired() -> bool:
        rules = {str(a["rule"]) for a in open_alerts(demo, alerts_port, COMMUNITY)}
        return "immediate_confirmed" in rules and any(rule.startswith("ears_") for rule in rules)

    wait_until("the outbreak's alerts", fired, ALERTS_TIMEOUT_S)
    seen: list[set[str]] = []

    def settled() -> bool:
        seen.append({str(a["id"]) for a in open_alerts(demo, alerts_port, DISTRICT)})
        return len(seen) >= SETTLED_POLLS and all(ids == seen[-1] for ids in seen[-SETTLED_POLLS:])

    wait_until("the open alerts to settle", settled, ALERTS_TIMEOUT_S)
    say(f"{len(seen[-1])} open alerts in the district")


def wait_for_unit(page: Page, name: str) -> None:
    """Wait until the page shows ``name`` with its table, sparklines and charts drawn."""
    expect(page.locator("#crumbs strong")).to_have_text(name)
    page.wait_for_function(
        """() => {
          const rows = document.querySelectorAll('#children tbody tr');
          const sparks = document.querySelectorAll('#children tbody td.spark svg');
          const chart = window.echarts
            && echarts.getInstanceByDom(document.getElementById('chart-fevers'));
          const drawn = chart && chart.getOption().series[0].data.length > 0;
          return drawn && rows.length === sparks.length;
        }"""
    )
    page.wait_for_timeout(800)  # the row highlight of live updates fades


def shot(page: Page, name: str) -> Path:
    """Save the viewport as ``docs/screenshots/<name>.png`` (not the full page)."""
    path = HERE / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    size = path.stat().st_size
    say(f"saved {path.name}: {size // 1024} KB")
    if size > MAX_PNG_BYTES:
        say(f"warning: {path.name} is larger than {MAX_PNG_BYTES // 1000} KB")
    return path


def click_row(page: Page, code: str) -> None:
    """Drill down into the child unit ``code`` from the table."""
    page.locator(f"#row-{code} td").first.click()


def take(page: Page, demo: Demo) -> None:
    """Drive the page through the four views and save a screenshot of each."""
    page.goto(demo.link)
    wait_for_unit(page, "银川市")  # the demo's token covers the city
    click_row(page, DISTRICT)
    wait_for_unit(page, "金凤区")
    shot(page, "01-district")

    click_row(page, STREET)
    wait_for_unit(page, "黄河东路街道")
    expect(page.locator(f"#row-{COMMUNITY}")).to_be_visible()
    shot(page, "02-street")

    click_row(page, COMMUNITY)
    expect(page.locator("#crumbs strong")).to_have_text("悦湖社区")
    firing: Locator = page.locator("#alert-list > li[data-state=firing]")
    expect(firing.first).to_be_visible()
    alert = firing.first
    alert_id = alert.get_attribute("id")
    alert.locator("button[data-action=ack]").click()
    acknowledged = page.locator(f"#{alert_id}")
    expect(acknowledged).to_have_attribute("data-state", "acknowledged")
    expect(acknowledged.locator(".timeline li")).not_to_have_count(0)
    expect(page.locator("#alert-list > li[data-state=firing]").first).to_be_visible()
    page.locator("section.alerts").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    shot(page, "03-alerts")

    page.click(f"#crumbs a[data-code='{DISTRICT}']")
    wait_for_unit(page, "金凤区")
    page.click("#lang")
    expect(page.locator("h1")).to_have_text("Direct Reporting Command Centre")
    wait_for_unit(page, "Jinfeng")
    shot(page, "04-english")


def main() -> int:
    """Start the demo, take the screenshots, stop the demo."""
    say("starting zhibao up --demo")
    alerts_port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="zhibao-screenshots-") as tmp,
        running_demo(Path(tmp), alerts_port) as demo,
    ):
        demo.wait_for(demo.linked, "the banner", STARTUP_TIMEOUT_S)
        say(f"up; command centre at {demo.base_url}/")
        demo.wait_for(demo.done, "the demo to finish posting", DEMO_TIMEOUT_S)
        say("the demo has posted its two weeks")
        wait_for_alerts(demo, alerts_port)
        say("taking the screenshots")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
                context.set_default_timeout(TIMEOUT_MS)
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                take(page, demo)
                if errors:
                    say(f"errors in the browser console: {errors}")
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
