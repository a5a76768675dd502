"""``zhibao audit``'s table: what a refused event's id holds cannot forge or hide a line;
a tally of refusals says how many it counts."""

from __future__ import annotations

from zhibao_cli.audit import row


def test_control_characters_in_a_record_are_escaped_not_printed() -> None:
    forged = "ok-2\n2026-12-07T13:50:00  640106001002  王芳  zhibao.case.v1  accepted"
    record = {
        "at": "2026-12-07T13:13:47.123Z",
        "unit": "640106001001",
        "token_name": "gate\x1b[2K",
        "type": "zhibao.screening.v1",
        "outcome": "rejected",
        "event_id": forged + "\x1b[31mRED\u202e",
        "event_source": "/640106001001/gate-1",
    }
    line = row(record)
    assert line.isprintable(), repr(line)
    assert "ok-2\\n2026-12-07T13:50:00" in line
    assert "\\x1b[31mRED\\u202e" in line
    assert "gate\\x1b[2K" in line
    assert "王芳" in line  # other scripts stay as they are


def test_spaces_of_any_width_stay_as_they_are() -> None:
    record = {"at": "2026-12-07T13:13:47Z", "token_name": "金凤区\u3000值班", "event_id": "a\xa0b"}
    line = row(record)
    assert "金凤区\u3000值班" in line and "a\xa0b" in line


def test_a_tally_shows_how_many_refusals_it_counts_from_where_and_since_when() -> None:
    record = {
        "at": "2026-12-07T13:14:00Z",
        "unit": "640106001001",
        "token_name": "gate",
        "kind": "tally",
        "outcome": "refused",
        "code": "rate_limited",
        "detail": {
            "from": "2026-12-07T13:13:00+00:00",
            "remote": "198.51.100.23",
            "reason": "rate_limited",
            "count": 7,
        },
    }
    line = row(record)
    assert "7 refused from 198.51.100.23; since 2026-12-07T13:13:00+00:00" in line
    assert "code rate_limited" in line
