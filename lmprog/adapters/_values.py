"""Rendering typed values to text and reading them back, tolerant of the noise LMs add."""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel


class ParseFailure(Exception):
    """One field's text could not be read as its type (internal; adapters turn it into OutputParseError)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def render_value(value: Any) -> str:
    """Text for a value in a prompt: strings as they are, labels bare, structures as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if value is None:
        return "none"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(pydantic.TypeAdapter(type(value)).dump_python(value, mode="json"), ensure_ascii=False,
                      separators=(", ", ": "))


_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.S)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def strip_noise(text: str) -> str:
    """Remove code fences, surrounding quotes or backticks and markdown emphasis around a value."""
    t = text.strip()
    m = _FENCE.match(t)
    if m:
        t = m.group(1).strip()
    for _ in range(2):
        if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'`*":
            t = t[1:-1].strip()
    return t


def _literal_choice(text: str, choices: list[Any], field: str | None) -> Any:
    t = strip_noise(text)
    by_text = {str(c).lower(): c for c in choices}
    low = t.lower()
    if low in by_text:
        return by_text[low]
    # A label followed by more text ("positive. The review praises ...") or wrapped in punctuation.
    head = re.split(r"[\s.,;:!?)\]]", low.lstrip("([*\"'`"), maxsplit=1)[0]
    if head in by_text:
        return by_text[head]
    for c in sorted(by_text, key=len, reverse=True):
        if low.startswith(c):
            return by_text[c]
    found = {c for c in by_text if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", low)}
    if len(found) == 1:
        return by_text[found.pop()]
    raise ParseFailure(field, f"expected one of {[str(c) for c in choices]}, got {text.strip()[:80]!r}")


def _json_value(text: str, field: str | None) -> Any:
    t = strip_noise(text)
    try:
        return json.loads(t)
    except json.JSONDecodeError:
        pass
    start = min((i for i in (t.find("{"), t.find("[")) if i >= 0), default=-1)
    if start >= 0:
        try:
            return json.JSONDecoder().raw_decode(t[start:])[0]
        except json.JSONDecodeError:
            pass
    raise ParseFailure(field, f"expected JSON, got {text.strip()[:80]!r}")


def coerce(text: Any, annotation: Any, adapter: pydantic.TypeAdapter[Any], field: str | None = None) -> Any:
    """Read `text` as `annotation` and validate it with pydantic; raise ParseFailure with the reason."""
    value = _pre(text, annotation, field) if isinstance(text, str) else text
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        where = f" at {loc}" if loc else ""
        raise ParseFailure(field, f"{err.get('msg')}{where} (got {str(text).strip()[:80]!r})") from None


def _pre(text: str, ann: Any, field: str | None) -> Any:
    origin = get_origin(ann)
    args = get_args(ann)
    if origin is typing.Annotated:
        return _pre(text, args[0], field)
    if ann is str:
        t = text.strip()
        m = _FENCE.match(t)
        return m.group(1) if m else t
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if type(None) in args and strip_noise(text).lower() in ("", "none", "null", "n/a"):
            return None
        if len(inner) == 1:
            return _pre(text, inner[0], field)
        return _json_or_text(text)
    if origin is Literal:
        return _literal_choice(text, list(args), field)
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        members = {str(m.value).lower(): m for m in ann} | {m.name.lower(): m for m in ann}
        return members[str(_literal_choice(text, list(members), field)).lower()]
    if ann is bool:
        low = strip_noise(text).lower().rstrip(".!")
        if low in ("true", "yes", "1", "y"):
            return True
        if low in ("false", "no", "0", "n"):
            return False
        raise ParseFailure(field, f"expected true or false, got {text.strip()[:80]!r}")
    if ann in (int, float):
        t = strip_noise(text).replace(",", "")
        m = _NUMBER.search(t)
        if not m:
            raise ParseFailure(field, f"expected a number, got {text.strip()[:80]!r}")
        num = m.group(0)
        if ann is int and re.fullmatch(r"[-+]?\d+\.0*", num):
            num = num.split(".")[0]
        return num
    if origin is list and args and args[0] is str:
        try:
            return _json_value(text, field)
        except ParseFailure:
            lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", ln).strip() for ln in strip_noise(text).splitlines()]
            return [ln for ln in lines if ln]
    return _json_value(text, field)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(strip_noise(text))
    except json.JSONDecodeError:
        return strip_noise(text)
