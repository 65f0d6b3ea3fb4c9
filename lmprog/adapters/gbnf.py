"""GBNF grammars (llama.cpp) for typed outputs: JSON schemas, field values and whole completions.

Pure Python with no llama_cpp import, so adapters can build grammars cheaply and tests can check them
without a model. Three entry points:

- `json_schema_to_gbnf(schema)`: compact JSON (no whitespace) satisfying a pydantic-style JSON schema.
- `value_rule(annotation)`: one field value in the completion adapter's text format (see the brief):
  str is one non-empty line, int/float as Python prints them, bool `true`/`false`, Literal/Enum the literal
  values, Optional adds `none`, containers and models are compact JSON.
- `completion_grammar(fields)`: everything a base model writes after a prompt ending in `FirstLabel:`.

Limits, on purpose: every object property is emitted, in schema order (a value for an optional property is
still valid); `pattern`, `format` and numeric bounds are not enforced (pydantic checks them when parsing).
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from collections.abc import Collection
from typing import Any

__all__ = ["completion_grammar", "gbnf_literal", "json_schema_to_gbnf", "value_rule"]

# Shared leaf rules: name -> body. Compact JSON, with digit counts bounded so a small model that starts
# repeating a digit cannot run on until max_tokens.
_PRIMITIVES: dict[str, str] = {
    "json-string": '"\\"" json-char* "\\""',
    "json-char": '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "json-int": '"-"? ("0" | [1-9] [0-9]{0,17})',
    "json-number": '"-"? ("0" | [1-9] [0-9]{0,17}) ("." [0-9]{1,17})? ([eE] [-+]? [0-9]{1,3})?',
    "json-bool": '"true" | "false"',
    "json-null": '"null"',
    "json-value": "json-object | json-array | json-string | json-number | json-bool | json-null",
    "json-object": '"{" (json-string ":" json-value ("," json-string ":" json-value)*)? "}"',
    "json-array": '"[" (json-value ("," json-value)*)? "]"',
    # Text values of the completion format: one line that is neither empty nor starts with whitespace
    # (the adapter strips values, so a leading blank could only waste tokens).
    "text-line": "[^\\n\\r \\t] [^\\n\\r]*",
    # A str field marked multiline (code, a file): any text, ended by the grammar's next label, the request's
    # stop sequences (`\n---` in the completion adapter) or max_tokens.
    "text-block": "[^\\n\\r \\t] [^\\r]*",
    "py-float": '"-"? [0-9]{1,18} ("." [0-9]{1,17})? ([eE] [-+]? [0-9]{1,3})? | "inf" | "-inf" | "nan"',
}
_DEPENDS = {
    "json-string": ("json-char",),
    "json-value": ("json-object", "json-array", "json-string", "json-number", "json-bool", "json-null"),
    "json-object": ("json-string", "json-value"),
    "json-array": ("json-value",),
}


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal, with quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _alt(bodies: list[str]) -> str:
    unique = list(dict.fromkeys(bodies))
    return unique[0] if len(unique) == 1 else "(" + " | ".join(unique) + ")"


class _Builder:
    """Collects named rules; equal bodies share one rule, distinct bodies get distinct names."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self._ref_names: dict[tuple[int, str], str] = {}

    def use(self, name: str) -> str:
        """Include a shared primitive rule (and the rules it needs); returns its name."""
        if name not in self.rules:
            self.rules[name] = _PRIMITIVES[name]
            for dep in _DEPENDS.get(name, ()):
                self.use(dep)
        return name

    def define(self, hint: str, body: str) -> str:
        if body in self._by_body:
            return self._by_body[body]
        name = self._fresh(hint)
        self.rules[name] = body
        self._by_body[body] = name
        return name

    def _fresh(self, hint: str) -> str:
        # llama.cpp rule names allow only letters, digits and dashes.
        base = re.sub(r"[^a-zA-Z0-9-]+", "-", hint).strip("-").lower() or "r"
        name, i = base, 2
        while name in self.rules or name in _PRIMITIVES or name == "root":
            name, i = f"{base}-{i}", i + 1
        return name

    # -- JSON schema -----------------------------------------------------------------------------------
    def schema(self, s: Any, root: dict[str, Any], hint: str = "value", target: str | None = None) -> str:
        """A rule body (usually one rule name) for JSON values satisfying schema `s`.

        `target` names the rule an object or array body is stored under (a $ref's reserved name).
        """
        if s is True or s == {} or s is None:
            return self.use("json-value")
        if s is False:
            raise ValueError("a JSON schema of `false` admits no value, so no grammar can produce one")
        if not isinstance(s, dict):
            raise ValueError(f"not a JSON schema: {s!r}")
        if "$ref" in s:
            return self._ref(s["$ref"], root)
        if "const" in s:
            return gbnf_literal(_compact(s["const"]))
        if "enum" in s:
            return _alt([gbnf_literal(_compact(v)) for v in s["enum"]])
        for key in ("anyOf", "oneOf"):
            if key in s:
                return _alt([self.schema(sub, root, hint) for sub in s[key]])
        if "allOf" in s:
            if len(s["allOf"]) != 1:
                raise ValueError("allOf with several schemas is not supported; merge them into one schema")
            return self.schema(s["allOf"][0], root, hint)
        t = s.get("type")
        if isinstance(t, list):
            return _alt([self.schema({**s, "type": one}, root, hint) for one in t])
        if t == "object" or (t is None and ("properties" in s or "additionalProperties" in s)):
            return self._object(s, root, hint, target)
        if t == "array":
            return self._array(s, root, hint, target)
        if t == "string":
            return self._string(s)
        simple = {"integer": "json-int", "number": "json-number", "boolean": "json-bool", "null": "json-null"}
        if t in simple:
            return self.use(simple[t])
        if t is None:
            return self.use("json-value")
        raise ValueError(f"unsupported JSON schema type {t!r}")

    def _ref(self, ref: str, root: dict[str, Any]) -> str:
        key = (id(root), ref)
        if key in self._ref_names:
            return self._ref_names[key]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref ('#/...') is supported, got {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise ValueError(f"$ref {ref!r} points to nothing in the schema")
            target = target[part]
        # Reserve the name before building the body so that recursive schemas refer back to it.
        name = self._fresh(ref.rsplit("/", 1)[-1])
        self.rules[name] = ""
        self._ref_names[key] = name
        body = self.schema(target, root, name, target=name)
        if body != name:
            self.rules[name] = body
        return name

    def _emit(self, hint: str, body: str, target: str | None) -> str:
        if target is None:
            return self.define(hint, body)
        self.rules[target] = body
        return target

    def _object(self, s: dict[str, Any], root: dict[str, Any], hint: str, target: str | None) -> str:
        props: dict[str, Any] = s.get("properties") or {}
        if props:
            parts = []
            for i, (pname, psch) in enumerate(props.items()):
                key = ("," if i else "") + json.dumps(pname, ensure_ascii=False) + ":"
                parts.append(gbnf_literal(key) + " " + self.schema(psch, root, f"{hint}-{pname}"))
            return self._emit(hint, '"{" ' + " ".join(parts) + ' "}"', target)
        extra = s.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            val = self.schema(extra, root, f"{hint}-value")
            kv = f'{self.use("json-string")} ":" {val}'
            return self._emit(hint, f'"{{" ({kv} ("," {kv})*)? "}}"', target)
        return self.use("json-object")

    def _array(self, s: dict[str, Any], root: dict[str, Any], hint: str, target: str | None) -> str:
        prefix = s.get("prefixItems")
        if prefix:
            items = [self.schema(p, root, f"{hint}-item") for p in prefix]
            return self._emit(hint, '"[" ' + ' "," '.join(items) + ' "]"', target)
        item = self.schema(s.get("items", {}), root, f"{hint}-item")
        lo, hi = int(s.get("minItems", 0)), s.get("maxItems")
        if hi is not None and int(hi) == 0:
            return '"[]"'
        # "first item, then (n-1) comma-separated items", with the bounds moved onto the repetition.
        rest_hi = "" if hi is None else str(int(hi) - 1)
        rest_lo = max(lo - 1, 0)
        rest = f'("," {item})' + ("*" if (rest_lo, rest_hi) == (0, "") else f"{{{rest_lo},{rest_hi}}}")
        inner = f"{item} {rest}"
        body = f'"[" {inner} "]"' if lo > 0 else f'"[" ({inner})? "]"'
        return self._emit(hint, body, target)

    def _string(self, s: dict[str, Any]) -> str:
        lo, hi = s.get("minLength"), s.get("maxLength")
        if lo is None and hi is None:
            return self.use("json-string")
        self.use("json-char")
        rep = f"{{{int(lo or 0)},{'' if hi is None else int(hi)}}}"
        return self.define("string-bounded", f'"\\"" json-char{rep} "\\""')

    def render(self, root_body: str) -> str:
        lines = [f"root ::= {root_body}"] + [f"{name} ::= {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A GBNF grammar whose sentences are compact JSON documents satisfying `schema` (pydantic's dialect)."""
    b = _Builder()
    return b.render(b.schema(schema, schema, "root-value"))


# -- the completion adapter's text format -------------------------------------------------------------------
def _literal_text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


def _value(annotation: Any, b: _Builder, hint: str) -> str:
    origin = typing.get_origin(annotation)
    if annotation is None or annotation is type(None):
        return '"none"'
    if origin is typing.Annotated:
        return _value(typing.get_args(annotation)[0], b, hint)
    if origin is typing.Literal:
        return _alt([gbnf_literal(_literal_text(v)) for v in typing.get_args(annotation)])
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _alt([gbnf_literal(_literal_text(m)) for m in annotation])
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(annotation)
        bodies = [_value(a, b, hint) for a in args if a is not type(None)]
        if type(None) in args:
            bodies.append('"none"')
        return _alt(bodies)
    if annotation is str or annotation is Any:
        return b.use("text-line")
    if annotation is bool:
        return b.use("json-bool")  # Python's str() of ints and our bool text coincide with JSON's
    if annotation is int:
        return b.use("json-int")
    if annotation is float:
        return b.use("py-float")
    from pydantic import TypeAdapter

    schema = TypeAdapter(annotation).json_schema()
    if schema.get("type") == "string" and not ({"enum", "const"} & set(schema)):
        return b.use("text-line")  # dates, paths, UUIDs, ... are written as their text
    return b.schema(schema, schema, hint)


def value_rule(annotation: Any) -> tuple[str, dict[str, str]]:
    """(rule body, the named rules it refers to) for one value of type `annotation` in the text format."""
    b = _Builder()
    body = _value(annotation, b, "value")
    return body, dict(b.rules)


def completion_grammar(fields: list[tuple[str, Any]], multiline: Collection[str] = ()) -> str:
    """The grammar of a whole completion: `" " value1 "\\n" "Label2: " value2 ... valueN`.

    `fields` is [(label, annotation), ...] in output order; the prompt already ends with the first label and
    its colon, so the first field contributes only its value. The last value has no newline after it: the
    grammar is complete once it is written, so decoding ends there without evaluating one more token.
    A str field whose label is in `multiline` may span lines.
    """
    if not fields:
        raise ValueError("completion_grammar needs at least one output field")
    b = _Builder()
    parts: list[str] = []
    for i, (label, annotation) in enumerate(fields):
        head = " " if i == 0 else f"\n{label}: "
        block = label in multiline and annotation is str
        value = b.use("text-block") if block else _value(annotation, b, f"field-{label}")
        parts.append(f"{gbnf_literal(head)} {value}")
    return b.render(" ".join(parts))
