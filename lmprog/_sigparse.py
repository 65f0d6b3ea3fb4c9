"""Parse the string form of a signature, `"context: list[str], question -> answer: int"`, without eval.

Types are read by a small recursive-descent parser over a fixed vocabulary (str, int, float, bool, list,
dict, Optional, Literal, `X | None`, and names the caller passes in `types`); Literal values are read with
`ast.literal_eval`, which only accepts literals.
"""

from __future__ import annotations

import ast
import re
import typing
from typing import Any, Literal, Optional

from .errors import UsageError

_BUILTIN: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _split_top(text: str, sep: str, spec: str) -> list[str]:
    """Split on `sep` outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0 or quote:
        raise UsageError(f"signature {spec!r}: unbalanced brackets or quotes in {text.strip()!r}")
    parts.append("".join(cur))
    return parts


def parse_type(text: str, types: dict[str, Any], spec: str) -> Any:
    text = text.strip()
    if not text:
        raise UsageError(f"signature {spec!r}: empty type after ':'")
    alts = _split_top(text, "|", spec)
    if len(alts) > 1:
        parsed = [parse_type(a, types, spec) for a in alts]
        return typing.Union[tuple(parsed)]  # noqa: UP007
    if text == "None":
        return type(None)
    m = _NAME.match(text)
    if not m:
        raise UsageError(f"signature {spec!r}: cannot read type {text!r}")
    head, rest = m.group(0), text[m.end():].strip()
    if not rest:
        if head in _BUILTIN:
            return _BUILTIN[head]
        if head in types:
            return types[head]
        if head in ("list", "dict"):
            raise UsageError(f"signature {spec!r}: bare {head!r} has no item type; write e.g. {head}[str]"
                             + ("" if head == "list" else " → dict[str, int]"))
        raise UsageError(
            f"signature {spec!r}: unknown type {head!r}; use str, int, float, bool, list[...], dict[str, ...], "
            f"Optional[...], Literal[...], or pass types={{'{head}': {head}}}"
        )
    if not (rest.startswith("[") and rest.endswith("]")):
        raise UsageError(f"signature {spec!r}: cannot read type {text!r}")
    inner = rest[1:-1]
    args = [a.strip() for a in _split_top(inner, ",", spec)]
    if head == "Literal":
        try:
            values = tuple(ast.literal_eval(a) for a in args)
        except (ValueError, SyntaxError):
            raise UsageError(f"signature {spec!r}: Literal values must be quoted literals, got {inner!r}") from None
        return Literal[values]  # type: ignore[valid-type]
    if head in ("list", "List") and len(args) == 1:
        return list[parse_type(args[0], types, spec)]  # type: ignore[misc]
    if head in ("dict", "Dict") and len(args) == 2:
        return dict[parse_type(args[0], types, spec), parse_type(args[1], types, spec)]  # type: ignore[misc]
    if head == "Optional" and len(args) == 1:
        return Optional[parse_type(args[0], types, spec)]  # noqa: UP007
    raise UsageError(f"signature {spec!r}: cannot read type {text!r}")


def _fields(side: str, spec: str, types: dict[str, Any], what: str) -> list[tuple[str, Any]]:
    if not side.strip():
        raise UsageError(f"signature {spec!r}: no {what} fields; write e.g. 'question -> answer'")
    out = []
    for item in _split_top(side, ",", spec):
        name, _, tp = item.partition(":")
        name = name.strip()
        if not name.isidentifier():
            raise UsageError(f"signature {spec!r}: {name!r} is not a valid field name")
        out.append((name, parse_type(tp, types, spec) if tp.strip() else str))
    return out


def parse_signature(spec: str, types: dict[str, Any]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    sides = spec.split("->")
    if len(sides) != 2:
        raise UsageError(f"signature {spec!r} must have exactly one '->' between inputs and outputs")
    return _fields(sides[0], spec, types, "input"), _fields(sides[1], spec, types, "output")
