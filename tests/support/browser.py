"""The browser tests' one patience: Playwright's actions and its assertions wait as long.

A context's default timeout covers actions (click, fill, goto) but not ``expect``,
whose own default is 5 s: a page that is right but late on a loaded machine (a
stalled disk, both cores busy) would fail an assertion the test meant to wait for.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, BrowserContext, expect

#: How long an action or an assertion waits before the test fails.
TIMEOUT_MS = 20_000


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    """A browser context whose actions and ``expect`` assertions wait ``TIMEOUT_MS``."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    return context
