"""The suite's own plumbing: no third-party library is parsed by pytest mid-test.

pytest rewrites the asserts of every module in an autoloaded plugin's package, parsing
its source with ast the first time it is imported. schemathesis imports most of itself
lazily, inside the first OpenAPI check, while in-process services run in threads; on
CPython 3.11.7 a thread formatting a traceback (which calls ast.parse) during that parse
made the import fail with "SystemError: AST constructor recursion depth mismatch"
(gh-106905), failing both OpenAPI tests of a CI run. The suite therefore names its
plugins instead of autoloading them (pyproject.toml).
"""

from __future__ import annotations

import importlib

import pytest
from _pytest.assertion.rewrite import AssertionRewritingHook


def test_schemathesis_is_imported_as_it_was_compiled_not_rewritten_by_pytest() -> None:
    module = importlib.import_module("schemathesis.specs.openapi.definitions")
    assert not isinstance(module.__loader__, AssertionRewritingHook)


def test_the_plugins_the_suite_relies_on_are_loaded(pytestconfig: pytest.Config) -> None:
    for name in ("asyncio", "timeout", "hypothesispytest"):
        assert pytestconfig.pluginmanager.has_plugin(name), name
    assert not pytestconfig.pluginmanager.has_plugin("schemathesis")
