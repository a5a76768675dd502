"""Report templates kept as YAML files in a directory (``ZHIBAO_AGGREGATOR_TEMPLATES_DIR``).

A file ``<id>.yaml`` holds one template (its ``id`` is the file's name; an ``id`` key,
if written, must say the same). Every file is validated completely before any is used:
one bad file refuses the whole directory, each problem named by file and field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from zhibao_aggregator.domain.templates import TEMPLATE_ID_PATTERN, ReportTemplate, check_against
from zhibao_shared.hierarchy import Registry

SUFFIXES = (".yaml", ".yml")


def sample_dir() -> Path:
    """The templates shipped with the sample registry (金凤区)."""
    return Path(str(resources.files("zhibao_aggregator").joinpath("report_templates")))


class TemplateFileError(ValueError):
    """Some template files are wrong; ``problems`` names each by file and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("bad report template file(s):\n  " + "\n  ".join(problems))
        self.problems = problems


def load_templates(directory: Path, registry: Registry) -> dict[str, ReportTemplate]:
    """Every template of the directory by id, or :class:`TemplateFileError` with all problems."""
    if not directory.is_dir():
        raise TemplateFileError([f"{directory}: not a directory"])
    problems: list[str] = []
    found: dict[str, ReportTemplate] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES):
        template, errors = parse_file(path, registry)
        problems += errors
        if template is not None:
            found[template.id] = template
    if problems:
        raise TemplateFileError(problems)
    return found


def parse_file(path: Path, registry: Registry) -> tuple[ReportTemplate | None, list[str]]:
    """One file's template, or the problems found in it (each prefixed with the file name)."""
    name = path.name
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, [f"{name}: not readable as UTF-8 YAML ({_first_line(exc)})"]
    if not isinstance(document, dict):
        return None, [f"{name}: must hold a mapping (title:, rows:, columns: ...)"]
    document = {str(k): v for k, v in document.items()}
    problems: list[str] = []
    if document.setdefault("id", path.stem) != path.stem:
        problems.append(f"{name}: id: must be the file's name ({path.stem!r})")
    if not re.fullmatch(TEMPLATE_ID_PATTERN, path.stem):
        problems.append(f"{name}: id: the file's name must be lower-case letters, digits, - or _")
    if problems:
        document["id"] = "checked"  # go on to report the other fields' problems too
    try:
        template = ReportTemplate.model_validate(document)
    except ValidationError as exc:
        return None, problems + [f"{name}: {problem}" for problem in describe(exc)]
    wrong = check_against(template, registry)
    problems += [f"{name}: unit: {wrong}"] if wrong else []
    return (None, problems) if problems else (template, [])


def describe(exc: ValidationError) -> list[str]:
    """Each validation error as ``field.path: message`` (``columns[2].figure: ...``)."""
    return [f"{location(e['loc'])}: {_message(e)}" for e in exc.errors(include_input=False)]


def location(loc: Iterable[int | str]) -> str:
    """A pydantic error location as a path (the period's form tags folded away)."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if part == previous:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        previous = part
    return out or "(template)"


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
