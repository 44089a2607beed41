"""Report forms: checks a team's template (the fields) and a report's answers against it.

A template is a list of fields ``{key, label, type, required, choices?, min?, max?}``; type is one of
text, number, choice, multichoice, boolean, date. ``choices`` belong to choice and multichoice only
(at least one, no repeats), ``min``/``max`` to number only. Every problem names where it is
(``fields[2].choices``, ``answers.shelf_count``) so a form can show it next to the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

TYPES = ("text", "number", "choice", "multichoice", "boolean", "date")
MAX_FIELDS = 100
MAX_CHOICES = 200
MAX_TEXT = 4000
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_KNOWN = {"key", "label", "type", "required", "choices", "min", "max"}


@dataclass(frozen=True, slots=True)
class Problem:
    where: str
    problem: str


class Invalid(ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.where}: {p.problem}" for p in problems))
        self.problems = list(problems)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _field_problems(n: int, f: Mapping[str, Any], seen: set[str]) -> list[Problem]:
    where = f"fields[{n}]"
    out = [Problem(f"{where}.{k}", "unknown property") for k in sorted(set(f) - _KNOWN)]
    key, kind = f.get("key"), f.get("type")
    if not isinstance(key, str) or not KEY.fullmatch(key):
        out.append(Problem(f"{where}.key", "a letter then letters, digits or _ (at most 64)"))
    elif key in seen:
        out.append(Problem(f"{where}.key", f"duplicate key {key!r}"))
    else:
        seen.add(key)
    label = f.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > 200:
        out.append(Problem(f"{where}.label", "needs a label of 1 to 200 characters"))
    if kind not in TYPES:
        out.append(Problem(f"{where}.type", f"one of {', '.join(TYPES)}"))
    if not isinstance(f.get("required", False), bool):
        out.append(Problem(f"{where}.required", "true or false"))
    choices = f.get("choices")
    if kind in ("choice", "multichoice"):
        if (not isinstance(choices, list) or not choices or len(choices) > MAX_CHOICES
                or not all(isinstance(c, str) and c.strip() for c in choices)):
            out.append(Problem(f"{where}.choices",
                               f"a {kind} field needs 1 to {MAX_CHOICES} non-empty choices"))
        elif len(set(choices)) != len(choices):
            out.append(Problem(f"{where}.choices", "repeated choice"))
    elif choices is not None:
        out.append(Problem(f"{where}.choices", "only choice and multichoice fields have choices"))
    low: Any = f.get("min")
    high: Any = f.get("max")
    for name, value in (("min", low), ("max", high)):
        if value is not None and kind != "number":
            out.append(Problem(f"{where}.{name}", "only number fields have min and max"))
        elif value is not None and not _number(value):
            out.append(Problem(f"{where}.{name}", "a finite number"))
    if _number(low) and _number(high) and low > high:
        out.append(Problem(f"{where}.min", f"min {low} is greater than max {high}"))
    return out


def template_problems(fields: Sequence[Any]) -> list[Problem]:
    """Empty when the template is good."""
    if len(fields) > MAX_FIELDS:
        return [Problem("fields", f"at most {MAX_FIELDS} fields")]
    seen: set[str] = set()
    out: list[Problem] = []
    for n, f in enumerate(fields):
        if not isinstance(f, Mapping):
            out.append(Problem(f"fields[{n}]", "an object"))
        else:
            out += _field_problems(n, f, seen)
    return out


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _answer_problem(f: Mapping[str, Any], value: Any) -> str | None:
    kind = f["type"]
    if kind == "text":
        return None if isinstance(value, str) and len(value) <= MAX_TEXT else f"text of at most {MAX_TEXT}"
    if kind == "boolean":
        return None if isinstance(value, bool) else "true or false"
    if kind == "number":
        if not _number(value):
            return "a number"
        if f.get("min") is not None and value < f["min"]:
            return f"at least {f['min']}"
        if f.get("max") is not None and value > f["max"]:
            return f"at most {f['max']}"
        return None
    if kind == "choice":
        ok = isinstance(value, str) and value in f["choices"]
        return None if ok else f"one of {', '.join(f['choices'])}"
    if kind == "multichoice":
        if not isinstance(value, list) or not all(isinstance(v, str) and v in f["choices"] for v in value):
            return f"a list of {', '.join(f['choices'])}"
        return "a choice given twice" if len(set(value)) != len(value) else None
    try:  # date: exactly YYYY-MM-DD
        date.fromisoformat(value)
        return None if isinstance(value, str) and len(value) == 10 else "a date as YYYY-MM-DD"
    except (TypeError, ValueError):
        return "a date as YYYY-MM-DD"


def answer_problems(fields: Sequence[Mapping[str, Any]], answers: Mapping[str, Any]) -> list[Problem]:
    """Empty when ``answers`` fills the template: required fields present, values of the field's
    type and within its choices and bounds, no keys the template does not have."""
    by_key = {f["key"]: f for f in fields}
    out = [Problem(f"answers.{k}", "not a field of the team's report template")
           for k in sorted(set(answers) - by_key.keys())]
    for key, f in by_key.items():
        value = answers.get(key)
        if _blank(value):
            if f.get("required"):
                out.append(Problem(f"answers.{key}", "required"))
            continue
        problem = _answer_problem(f, value)
        if problem is not None:
            out.append(Problem(f"answers.{key}", problem))
    return out
