"""Silences with matchers, as in Alertmanager: all matchers must match an alert's labels.

A matcher is literal (``community = 640106001001``) or a glob (``alertname = ears_*``:
``*`` any run of characters, ``?`` one character). Regular expressions are not
accepted: one pattern with nested repetition, evaluated for every new alert, could
hold the service for minutes. Globs are matched by :func:`glob_match`, whose work is
bounded by the product of the (capped) pattern and label lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zhibao_shared.hierarchy import Level

#: Labels an alert carries (see ``payloads.labels``): only these can be matched.
LABELS = ("alertname", "severity", "unit", *(level.value for level in reversed(Level)), "grid")
MAX_VALUE = 100
MAX_MATCHERS = 10

REGEX_REFUSED = (
    "regular-expression matchers are not accepted (a pattern could stall the service); "
    "use a literal value, or is_glob with * (any run of characters) and ? (one character)"
)


class Matcher(BaseModel):
    """``name`` equals ``value``, or matches it as a glob when ``is_glob``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern="^(" + "|".join(LABELS) + ")$", description="An alert label")
    value: str = Field(max_length=MAX_VALUE, pattern=r"^[^\x00-\x1f\x7f]*$")
    is_glob: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_regex(cls, data: Any) -> Any:
        """``is_regex: false`` (the old default) is accepted and dropped; true is refused."""
        if isinstance(data, dict) and "is_regex" in data:
            if data["is_regex"]:
                raise ValueError(REGEX_REFUSED)
            data = {k: v for k, v in data.items() if k != "is_regex"}
        return data

    def matches(self, labels: dict[str, str]) -> bool:
        """True when the label has the value (or matches the glob)."""
        actual = labels.get(self.name, "")
        if self.is_glob:
            return glob_match(self.value, actual)
        return actual == self.value


def glob_match(pattern: str, text: str) -> bool:
    """``*`` and ``?`` glob matching over the whole text, without backtracking blow-up.

    The classic two-pointer scan: on a mismatch it resumes just after the last ``*``,
    one character further into the text, so the work is at most
    ``len(pattern) * len(text)`` steps whatever the pattern.
    """
    p = t = 0
    star = -1  # position of the last '*' in the pattern
    resume = 0  # text position that '*' is currently assumed to reach
    while t < len(text):
        if p < len(pattern) and pattern[p] in ("?", text[t]) and pattern[p] != "*":
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume = p, t
            p += 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def silenced_by(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    """True when every matcher matches (an empty silence matches nothing)."""
    return bool(matchers) and all(m.matches(labels) for m in matchers)


#: The longest unit code a silence of critical alerts may cover (a district's): below
#: it, a community or street would keep its own confirmed cases from the levels above.
CRITICAL_SILENCED_FROM = 6


@dataclass(frozen=True)
class InForce:
    """A silence in force: its id, matchers and the units it covers."""

    id: int
    matchers: list[Matcher]
    #: the units it covers (None: made before they were kept)
    units: tuple[str, ...] | None = None

    def silences(self, labels: dict[str, str]) -> bool:
        """True when it silences an alert of these labels: every matcher matches, and a
        critical alert only by a silence covering a district or more (a community's or a
        street's own silence never keeps a confirmed case from the levels above)."""
        below_a_district = self.units is not None and any(
            len(unit) > CRITICAL_SILENCED_FROM for unit in self.units
        )
        if below_a_district and labels.get("severity") == "critical":
            return False
        return silenced_by(self.matchers, labels)


def stored_matchers(raw: Any) -> list[Matcher] | None:
    """Matchers read back from the database, or None when any is not valid today
    (e.g. a regular expression written by an older version): such a silence matches
    nothing rather than being evaluated."""
    if not isinstance(raw, list):
        return None
    try:
        return [Matcher.model_validate(m) for m in raw]
    except ValueError:
        return None
