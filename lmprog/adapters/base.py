"""The adapter seam: a signature plus demos and inputs become a request; the model's text becomes fields.

Subclasses implement `format`, `parse` and `render_outputs`; `Adapter.__call__` owns the shared protocol:
call the LM (with a decoding constraint where the backend can enforce one), parse each sample, and on a parse
failure make at most one repair call that shows the model its error — counted in the ledger as a "repair"
call — before raising `OutputParseError` with the raw text.
"""

from __future__ import annotations

import enum
import functools
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OutputParseError
from ..example import Example
from ..signature import Signature, field_label, type_name
from ._values import ParseFailure, coerce, render_value

if TYPE_CHECKING:
    from ..lm.base import LM, Constraint

_TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def _env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                               trim_blocks=True, lstrip_blocks=True)
    env.filters["value"] = render_value
    return env


@functools.cache
def template(name: str) -> Any:
    """A compiled template from adapters/templates (sandboxed, undefined variables are errors)."""
    return _env().from_string((_TEMPLATES / name).read_text(encoding="utf-8"))


def field_type_hint(annotation: Any) -> str:
    """A short, model-readable description of what a field's value looks like."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of: " + ", ".join(str(m.value) for m in annotation)
    if annotation is bool:
        return "true or false"
    return type_name(annotation)


class Adapter:
    """Base class of adapters; `name` is what `LM.default_adapter` refers to."""

    name = "base"
    #: Extra sampling parameters the adapter's format needs (e.g. stop sequences).
    default_params: dict[str, Any] = {}

    # -- to implement ---------------------------------------------------------------------------------------
    def format(self, signature: type[Signature], instructions: str, demos: Sequence[Example],
               inputs: dict[str, Any]) -> dict[str, Any]:
        """Return the request: `{"messages": [...]}` or `{"prompt": "..."}`."""
        raise NotImplementedError

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        """Read every output field from `text`, typed; raise ParseFailure naming the field at fault."""
        raise NotImplementedError

    def render_outputs(self, signature: type[Signature], values: dict[str, Any]) -> str:
        """The text a well-behaved model would answer with these output values (fakes and demos use it)."""
        raise NotImplementedError

    def constraint(self, signature: type[Signature], lm: LM) -> Constraint | None:
        """A decoding constraint for backends that can enforce one; None when there is none to give."""
        return None

    def repair(self, request: dict[str, Any], text: str, failure: ParseFailure,
               signature: type[Signature]) -> dict[str, Any]:
        """The request for the single repair attempt: the original one, showing the model what was wrong."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------------------
    def read_field(self, signature: type[Signature], name: str, text: Any) -> Any:
        """A field's value from the model's text (or an already-decoded JSON value), typed by pydantic."""
        return coerce(text, signature.annotation(name), signature.type_adapter(name), name)

    def labels(self, signature: type[Signature]) -> dict[str, str]:
        return {n: field_label(n, f) for n, f in signature.model_fields.items()}

    def __call__(self, lm: LM, signature: type[Signature], instructions: str, demos: Sequence[Example],
                 inputs: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
        request = self.format(signature, instructions, demos, inputs)
        merged = {**self.default_params, **params}
        constraint = self.constraint(signature, lm)
        resp = lm(**request, constraint=constraint, signature=signature, adapter=self, **merged)
        results = []
        for text in resp.texts:
            try:
                results.append(self.parse(signature, text))
                continue
            except ParseFailure as failure:
                first = failure
            fixed = self.repair(request, text, first, signature)
            again = lm(**fixed, constraint=constraint, signature=signature, adapter=self, kind="repair",
                       **{**merged, "n": 1})
            try:
                results.append(self.parse(signature, again.text))
            except ParseFailure as failure:
                raise OutputParseError(
                    f"could not parse the model's output for {signature.__name__}.{failure.field or '?'}: "
                    f"{failure.reason} (after one repair attempt)",
                    raw=again.text, field=failure.field, reason=failure.reason,
                ) from None
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def missing_outputs(signature: type[Signature], found: dict[str, Any]) -> None:
    missing = [n for n in signature.output_fields if n not in found]
    if missing:
        raise ParseFailure(missing[0], f"no value found for output field(s) {missing}")
