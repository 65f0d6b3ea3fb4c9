"""JSONAdapter: ask for one JSON object with the output fields; pass its schema as response_format."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pydantic

from ..example import Example
from ..lm.base import LM, Constraint
from ..signature import Signature, derived
from ._values import ParseFailure
from .base import Adapter, missing_outputs, template
from .chat import field_rows


def output_schema(signature: type[Signature]) -> dict[str, Any]:
    """The JSON schema of an object holding the signature's output fields (cached on the class)."""
    cache = derived(signature)
    if "__json_schema__" not in cache:
        fields = {n: (f.annotation, pydantic.Field(description=f.description))
                  for n, f in signature.output_fields.items()}
        model = pydantic.create_model(f"{signature.__name__}Output", **fields)  # type: ignore[call-overload]
        cache["__json_schema__"] = model.model_json_schema()
    return cache["__json_schema__"]  # type: ignore[no-any-return]


class JSONAdapter(Adapter):
    """Outputs as a JSON object; backends that constrain decoding are given the schema."""

    name = "json"

    def _json(self, values: dict[str, Any] | Example, names: Any) -> str:
        from pydantic_core import to_jsonable_python

        obj = {n: to_jsonable_python(values[n]) for n in names if n in values}
        return json.dumps(obj, ensure_ascii=False)

    def format(self, signature: type[Signature], instructions: str, demos: Sequence[Example],
               inputs: dict[str, Any]) -> dict[str, Any]:
        system = template("json_system.j2").render(
            instructions=instructions, inputs=field_rows(signature.input_fields),
            outputs=field_rows(signature.output_fields), schema=json.dumps(output_schema(signature)),
        )
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for demo in demos:
            messages.append({"role": "user", "content": self._json(demo, signature.input_fields)})
            messages.append({"role": "assistant", "content": self._json(demo, signature.output_fields)})
        messages.append({"role": "user", "content": self._json(inputs, signature.input_fields)})
        return {"messages": messages}

    def constraint(self, signature: type[Signature], lm: LM) -> Constraint | None:
        if getattr(lm.backend, "supports_json_schema", False):
            return Constraint(json_schema=output_schema(signature))
        return None

    def render_outputs(self, signature: type[Signature], values: dict[str, Any]) -> str:
        return self._json(values, signature.output_fields)

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        from ._values import _json_value

        obj = _json_value(text, None)
        if not isinstance(obj, dict):
            raise ParseFailure(None, f"expected a JSON object with keys {list(signature.output_fields)}")
        lowered = {str(k).lower(): v for k, v in obj.items()}
        found = {n: obj.get(n, lowered.get(n.lower())) for n in signature.output_fields
                 if n in obj or n.lower() in lowered}
        missing_outputs(signature, found)
        return {n: self.read_field(signature, n, v) for n, v in found.items()}

    def repair(self, request: dict[str, Any], text: str, failure: ParseFailure,
               signature: type[Signature]) -> dict[str, Any]:
        note = (f"Your answer could not be used: {failure.reason}. Answer again with one JSON object with the "
                f"keys {list(signature.output_fields)} and nothing else.")
        return {"messages": [*request["messages"], {"role": "assistant", "content": text},
                             {"role": "user", "content": note}]}
