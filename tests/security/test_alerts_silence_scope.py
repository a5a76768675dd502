"""Attack: a token of one street lists every silence in the district (whose outbreaks are
being handled, and by whom) and expires the neighbouring street's silences, paging its
staff again. Now silences are scoped like alerts, and who made a silence and who
expired it (token id and name, and when) is recorded and shown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.alerts.service_process import running_alerts
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import Role

STREET, NEIGHBOUR = "640106001", "640106002"
MINE, OTHER_IN_STREET, THEIRS = f"{STREET}001", f"{STREET}002", f"{NEIGHBOUR}001"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The embedded SQLite (None), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_silences_are_listed_and_expired_only_within_the_tokens_units(
    tmp_path: Path, nats_server: NatsServer, database_url: str | None
) -> None:
    with running_alerts(tmp_path, nats_server, database_url=database_url) as alerts:
        street_id, street = alerts.token(STREET, name="street duty")
        _id, neighbour = alerts.token(NEIGHBOUR, name="neighbour duty")
        _id, district = alerts.token("640106", name="district duty")
        _id, other_community = alerts.token(OTHER_IN_STREET, Role.READ, name="other community")
        _id, my_community = alerts.token(MINE, Role.READ, name="my community")

        def silence(secret: str, community: str) -> int:
            body = {
                "matchers": [{"name": "community", "value": community}],
                "duration_minutes": 60,
                "comment": f"outbreak in {community} handled on site",
            }
            created = alerts.call("POST", "/v1/silences", secret, json=body)
            assert created.status_code == 201, created.text
            return int(created.json()["id"])

        def listed(secret: str) -> dict[int, dict[str, object]]:
            answer = alerts.call("GET", "/v1/silences", secret, params={"include_expired": True})
            assert answer.status_code == 200, answer.text
            return {s["id"]: s for s in answer.json()["silences"]}

        mine, theirs = silence(street, MINE), silence(neighbour, THEIRS)
        assert set(listed(street)) == {mine}
        assert set(listed(neighbour)) == {theirs}
        assert set(listed(district)) == {mine, theirs}
        assert set(listed(my_community)) == {mine}
        assert set(listed(other_community)) == set(), "same street, another community"
        created = listed(street)[mine]
        assert (created["created_by"], created["created_by_token"]) == ("street duty", street_id)
        assert created["units"] == [MINE] and created["expired_at"] is None

        assert alerts.call("DELETE", f"/v1/silences/{mine}", neighbour).status_code == 403
        assert alerts.call("DELETE", f"/v1/silences/{mine}", my_community).status_code == 403
        assert alerts.call("DELETE", "/v1/silences/999999", street).status_code == 404
        assert listed(street)[mine]["expired_at"] is None, "still in force"

        expired = alerts.call("DELETE", f"/v1/silences/{mine}", street)
        assert expired.status_code == 200, expired.text
        record = listed(district)[mine]
        assert record["expired_by"] == "street duty"
        assert record["expired_by_token"] == street_id
        assert record["expired_at"] == expired.json()["expired_at"] == record["ends_at"]
        assert alerts.call("DELETE", f"/v1/silences/{mine}", street).status_code == 409
        in_force = alerts.call("GET", "/v1/silences", district).json()["silences"]
        assert [s["id"] for s in in_force] == [theirs]
