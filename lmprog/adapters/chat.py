"""ChatAdapter: chat messages in which each field's value follows a `[[ ## name ## ]]` marker."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..example import Example
from ..signature import Signature, derived
from ._values import ParseFailure, render_value
from .base import Adapter, field_type_hint, missing_outputs, template

_MARKER = re.compile(r"\[\[\s*##\s*(\w+)\s*##\s*\]\]")


def field_rows(fields: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(n, field_type_hint(f.annotation), f.description or "") for n, f in fields.items()]


class ChatAdapter(Adapter):
    """Fields marked in the text; the default for chat models reached through providers."""

    name = "chat"

    def system(self, signature: type[Signature], instructions: str) -> str:
        memo = derived(signature)
        key = ("__chat_system__", instructions)
        text = memo.get(key)  # type: ignore[call-overload]
        if text is None:
            text = memo[key] = template("chat_system.j2").render(  # type: ignore[index]
                instructions=instructions, inputs=field_rows(signature.input_fields),
                outputs=field_rows(signature.output_fields),
            )
        return text  # type: ignore[no-any-return]

    def _fields_text(self, values: dict[str, Any] | Example, names: Any, completed: bool) -> str:
        rows = [(n, render_value(values[n])) for n in names if n in values]
        return template("chat_fields.j2").render(fields=rows, completed=completed).strip()

    def format(self, signature: type[Signature], instructions: str, demos: Sequence[Example],
               inputs: dict[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system(signature, instructions)}]
        for demo in demos:
            messages.append({"role": "user", "content": self._fields_text(demo, signature.input_fields, False)})
            messages.append({"role": "assistant", "content": self._fields_text(demo, signature.output_fields, True)})
        user = self._fields_text(inputs, signature.input_fields, False)
        outs = ", ".join(f"[[ ## {n} ## ]]" for n in signature.output_fields)
        user += f"\n\nRespond with {outs}, then [[ ## completed ## ]]."
        messages.append({"role": "user", "content": user})
        return {"messages": messages}

    def render_outputs(self, signature: type[Signature], values: dict[str, Any]) -> str:
        return self._fields_text(values, signature.output_fields, True)

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        parts = _MARKER.split(text)
        found: dict[str, str] = {}
        outputs = signature.output_fields
        # parts = [before, name1, value1, name2, value2, ...]
        for i in range(1, len(parts) - 1, 2):
            name = parts[i].strip()
            if name in outputs and name not in found:
                found[name] = parts[i + 1].strip()
        if not found and len(outputs) == 1:
            found[next(iter(outputs))] = text.strip()  # a bare answer to a one-field signature
        missing_outputs(signature, found)
        return {n: self.read_field(signature, n, found[n]) for n in outputs}

    def repair(self, request: dict[str, Any], text: str, failure: ParseFailure,
               signature: type[Signature]) -> dict[str, Any]:
        outs = ", ".join(f"[[ ## {n} ## ]]" for n in signature.output_fields)
        note = (f"Your answer could not be used: {failure.reason}. Answer again with {outs}, "
                "each followed by its value, then [[ ## completed ## ]].")
        return {"messages": [*request["messages"], {"role": "assistant", "content": text},
                             {"role": "user", "content": note}]}
