"""Predict and ChainOfThought: the learnable LM steps programs are built from."""

from __future__ import annotations

import copy
from typing import Any

from . import usage
from .errors import UsageError
from .example import Example, Prediction
from .module import Module
from .settings import as_lm
from .signature import OutputField, Signature, ensure_signature
from .state import LABELLED


class Demo(Example):
    """A demonstration attached to a predictor; `kind` says whether it was labelled or bootstrapped."""

    __slots__ = ("kind",)

    def __init__(self, base: dict[str, Any] | Example | None = None, /, kind: str = LABELLED, **fields: Any) -> None:
        super().__init__(base, **fields)
        object.__setattr__(self, "kind", kind)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "kind":
            object.__setattr__(self, name, value)
        else:
            self._data[name] = value


class Predict(Module):
    """One LM step: `Predict(signature)(**inputs) -> Prediction`. Learnable state: instruction and demos."""

    def __init__(self, signature: str | type[Signature], *, instructions: str | None = None, lm: Any = None,
                 adapter: Any = None, **config: Any) -> None:
        self.signature = ensure_signature(signature)
        self.instructions: str = instructions or self.signature.instructions
        self.demos: list[Demo] = []
        self.lm = as_lm(lm)
        self.adapter = adapter
        self.config = config

    def reset(self) -> None:
        self.instructions = self.signature.instructions
        self.demos = []

    def __deepcopy__(self, memo: dict[int, Any]) -> Predict:
        new = copy.copy(self)
        new.demos = [Demo(d, kind=d.kind) for d in self.demos]
        new.config = dict(self.config)
        return new

    # -- state ----------------------------------------------------------------------------------------------
    def dump_predictor_state(self) -> dict[str, Any]:
        from .state import demo_to_json, signature_json

        return {
            "signature": signature_json(self.signature),
            "instructions": self.instructions,
            "demos": [demo_to_json(d, self.signature) for d in self.demos],
        }

    def load_predictor_state(self, state: dict[str, Any], name: str = "predictor") -> None:
        instructions, demos = self.read_predictor_state(state, name)
        self.instructions, self.demos = instructions, demos

    def read_predictor_state(self, state: dict[str, Any], name: str = "predictor") -> tuple[str, list[Demo]]:
        """Validate saved state against this predictor's signature without changing anything."""
        from .state import demo_from_json

        demos = [demo_from_json(d, self.signature, f"predictor {name!r}, demo {i}")
                 for i, d in enumerate(state.get("demos", []))]
        return state.get("instructions") or self.signature.instructions, demos

    # -- calling --------------------------------------------------------------------------------------------
    def _inputs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        sig = self.signature
        missing = [n for n, f in sig.input_fields.items() if n not in kwargs and f.is_required()]
        unknown = [n for n in kwargs if n not in sig.input_fields]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if unknown:
                parts.append(f"unexpected argument(s) {unknown}")
            raise UsageError(f"{sig.__name__}: {'; '.join(parts)}; its inputs are {list(sig.input_fields)}")
        out = {}
        fields = sig.input_fields
        for n, v in kwargs.items():
            if type(v) is str and fields[n].annotation is str and not fields[n].metadata:
                out[n] = v  # the common case needs no validation round trip
                continue
            try:
                out[n] = sig.type_adapter(n).validate_python(v)
            except Exception as exc:  # pydantic.ValidationError: report the field, not a traceback of internals
                raise UsageError(f"{sig.__name__}: input {n!r} does not fit its type: {exc}") from None
        return out

    def forward(self, **kwargs: Any) -> Prediction:
        from .adapters import adapter_for
        from .settings import current_lm, settings

        config = {**self.config, **kwargs.pop("config", {})}
        lm = config.pop("lm", None) or self.lm or current_lm()
        inputs = self._inputs(kwargs)
        adapter = self.adapter or adapter_for(lm)
        with usage.track() as t:
            outputs = adapter(lm, self.signature, self.instructions, self.demos, inputs, **config)
        pred = Prediction.from_completions(outputs)
        pred.usage = t.records
        trace = settings().trace
        if trace is not None:
            trace.append((self, inputs, pred))
        return pred

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature.signature_string()}, demos={len(self.demos)})"


REASONING_DESC = "Think step by step before answering."


class ChainOfThought(Predict):
    """Predict with a `reasoning` output written before the other outputs."""

    def __init__(self, signature: str | type[Signature], *, rationale_field: Any = None, **kwargs: Any) -> None:
        base = ensure_signature(signature)
        if "reasoning" in base.model_fields:
            raise UsageError(f"{base.__name__} already has a field named 'reasoning'; ChainOfThought adds it")
        extended = base.prepend("reasoning", rationale_field or OutputField(desc=REASONING_DESC), str)
        super().__init__(extended, **kwargs)
