"""CompletionAdapter: plain "Field: value" blocks for base models, demos as completed blocks.

A base model continues text; it does not follow chat markers. The prompt is the instruction, the demos as
filled-in blocks separated by `---`, and the current inputs, ending with the first output's label and a
colon. The model's continuation is read line by line. Backends that support grammars (the embedded model)
are given a GBNF grammar of the whole continuation, so every value has its type by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..example import Example
from ..lm.base import LM, Constraint
from ..signature import Signature, derived, field_label, is_multiline
from ._values import ParseFailure, render_value
from .base import Adapter, field_type_hint, missing_outputs, template


class CompletionAdapter(Adapter):
    """For base (non-chat) models such as the embedded Gemma 3 270M."""

    name = "completion"
    default_params = {"stop": ["\n---", "\n\n\n"]}

    def _layout(self, signature: type[Signature]) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """Field labels and the field-description lines, computed once per signature."""
        memo = derived(signature)
        layout = memo.get("__completion_layout__")
        if layout is None:
            fields = signature.model_fields
            labels = {n: field_label(n, f) for n, f in fields.items()}
            described = [(labels[n], (f.description or "") + (
                f" ({field_type_hint(f.annotation)})" if n in signature.output_fields and f.annotation is not str
                else "")) for n, f in fields.items() if f.description]
            layout = memo["__completion_layout__"] = (labels, described)
        return layout  # type: ignore[no-any-return]

    def format(self, signature: type[Signature], instructions: str, demos: Sequence[Example],
               inputs: dict[str, Any]) -> dict[str, Any]:
        labels, described = self._layout(signature)
        demo_rows = [[(labels[n], render_value(d[n])) for n in labels if n in d] for d in demos]
        input_rows = [(labels[n], render_value(inputs[n])) for n in signature.input_fields if n in inputs]
        prompt = template("completion.j2").render(
            instructions=instructions, described=described, demos=demo_rows, inputs=input_rows,
            first_output=labels[next(iter(signature.output_fields))],
        )
        return {"prompt": prompt.rstrip("\n")}

    def constraint(self, signature: type[Signature], lm: LM) -> Constraint | None:
        if not getattr(lm.backend, "supports_grammar", False):
            return None
        cache = derived(signature)
        if "__gbnf__" not in cache:
            from .gbnf import completion_grammar

            outs = signature.output_fields
            cache["__gbnf__"] = completion_grammar([(field_label(n, f), f.annotation) for n, f in outs.items()],
                                                   multiline={field_label(n, f) for n, f in outs.items()
                                                              if is_multiline(f)})
        return Constraint(grammar=cache["__gbnf__"])

    def render_outputs(self, signature: type[Signature], values: dict[str, Any]) -> str:
        outs = signature.output_fields
        lines = []
        for i, (n, f) in enumerate(outs.items()):
            if n not in values:
                continue
            text = render_value(values[n])
            lines.append(f" {text}" if i == 0 else f"{field_label(n, f)}: {text}")
        return "\n".join(lines) + "\n"

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        outs = signature.output_fields
        by_label = {field_label(n, f).lower(): n for n, f in outs.items()}
        names = list(outs)
        found: dict[str, list[str]] = {names[0]: []}
        current = names[0]
        for i, line in enumerate(text.split("\n")):
            if line.strip() == "---":
                break
            label, sep, rest = line.partition(":")
            key = label.strip().lower()
            if i > 0 and sep and key in by_label and by_label[key] not in found:
                current = by_label[key]
                found[current] = [rest]
            elif i > 0 and sep and key in {field_label(n, f).lower() for n, f in signature.input_fields.items()}:
                break  # the model started a new example
            else:
                found[current].append(line)
        values = {n: "\n".join(v).strip() for n, v in found.items()}
        if not values[names[0]] and len(names) == 1:
            raise ParseFailure(names[0], "the answer was empty")
        missing_outputs(signature, values)
        return {n: self.read_field(signature, n, values[n]) for n in names}

    def repair(self, request: dict[str, Any], text: str, failure: ParseFailure,
               signature: type[Signature]) -> dict[str, Any]:
        prompt = request["prompt"]
        head, sep, tail = prompt.partition("\n\n---")
        note = f"\n\n(An earlier answer was rejected: {failure.reason}. Follow the format of the examples.)"
        return {"prompt": head + note + sep + tail}
