"""Silences with matchers, as in Alertmanager: all matchers must match an alert's labels."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class Matcher(BaseModel):
    """``name`` = ``value`` (or ``value`` as a regular expression matching the whole label)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=32)
    value: str = Field(max_length=200)
    is_regex: bool = False

    @field_validator("is_regex")
    @classmethod
    def _compiles(cls, is_regex: bool, info: ValidationInfo) -> bool:
        if is_regex:
            try:
                re.compile(info.data.get("value", ""))
            except re.error as exc:
                raise ValueError(f"value is not a valid regular expression: {exc}") from None
        return is_regex

    def matches(self, labels: dict[str, str]) -> bool:
        """True when the label has the value (or fully matches the pattern)."""
        actual = labels.get(self.name, "")
        if self.is_regex:
            return re.fullmatch(self.value, actual) is not None
        return actual == self.value


def silenced_by(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    """True when every matcher matches (an empty silence matches nothing)."""
    return bool(matchers) and all(m.matches(labels) for m in matchers)
