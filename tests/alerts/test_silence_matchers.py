"""Silence matchers: globs in bounded time, regexes refused, old regex silences made safe."""

from __future__ import annotations

import fnmatch
import itertools
import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from sqlalchemy import Connection, insert, select

from zhibao_alerts.domain.silences import Matcher, glob_match, silenced_by, stored_matchers
from zhibao_alerts.tables import silences
from zhibao_shared.db import make_engine, sqlite_url

COMMUNITY = "640106001001"


def test_globs_match_as_fnmatch_does_for_star_and_question_mark() -> None:
    for size in range(5):
        for pattern in map("".join, itertools.product("ab*?", repeat=size)):
            for text in map("".join, itertools.product("ab", repeat=4)):
                assert glob_match(pattern, text) == fnmatch.fnmatchcase(text, pattern), (
                    pattern,
                    text,
                )


def test_a_matcher_is_literal_unless_it_says_glob() -> None:
    labels = {"alertname": "ears_c1_fevers", "community": COMMUNITY}
    assert Matcher(name="alertname", value="ears_*", is_glob=True).matches(labels)
    assert not Matcher(name="alertname", value="ears_*").matches(labels)
    assert silenced_by([Matcher(name="community", value="640106001???", is_glob=True)], labels), (
        "? is one character"
    )


@pytest.mark.parametrize(
    ("matcher", "problem"),
    [
        ({"name": "alertname", "value": "(a+)+$", "is_regex": True}, "regular-expression"),
        ({"name": "alertname", "value": "x" * 101}, "at most 100 characters"),
        ({"name": "building", "value": "3"}, "should match pattern"),
        ({"name": "alertname", "value": "a\nb"}, "should match pattern"),
    ],
)
def test_unsafe_or_unknown_matchers_are_refused(matcher: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Matcher.model_validate(matcher)


def test_the_old_default_is_regex_false_is_still_read() -> None:
    stored = [{"name": "community", "value": COMMUNITY, "is_regex": False}]
    assert stored_matchers(stored) == [Matcher(name="community", value=COMMUNITY)]
    stored.append({"name": "alertname", "value": "(a+)+$", "is_regex": True})
    assert stored_matchers(stored) is None, "a regex silence matches nothing"


def _alembic(connection: Connection) -> Config:
    config = Config()
    location = resources.files("zhibao_alerts").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


async def test_migration_0006_turns_simple_regexes_into_globs_and_expires_the_rest(
    tmp_path: Path,
) -> None:
    engine = make_engine(sqlite_url(tmp_path, "alerts"))
    now = datetime.now(UTC)
    unit = {"name": "community", "value": COMMUNITY, "is_regex": False}
    old = [
        [unit, {"name": "alertname", "value": "ears_.*", "is_regex": True}],
        [unit, {"name": "alertname", "value": "(a+)+$", "is_regex": True}],
        [unit],
    ]
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic(sync), "0005"))
            for matchers in old:
                await conn.execute(
                    insert(silences).values(
                        matchers=json.dumps(matchers),
                        starts_at=now,
                        ends_at=now + timedelta(hours=1),
                        created_by="old version",
                        comment="x",
                    )
                )
            await conn.run_sync(lambda sync: command.upgrade(_alembic(sync), "head"))
        async with engine.connect() as conn:
            rows = (await conn.execute(select(silences).order_by(silences.c.id))).all()
    finally:
        await engine.dispose()
    globbed, expired, plain = rows
    assert json.loads(globbed.matchers)[1] == {
        "name": "alertname",
        "value": "ears_*",
        "is_glob": True,
    }
    assert globbed.expired_at is None and globbed.ends_at > now
    assert expired.expired_by == "migration 0006" and expired.ends_at <= expired.expired_at
    assert json.loads(plain.matchers) == [{"name": "community", "value": COMMUNITY}]
    assert [json.loads(r.units) for r in rows] == [[COMMUNITY]] * 3
