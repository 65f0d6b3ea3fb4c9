"""Examples (data rows that know which keys are inputs) and Predictions (typed outputs of a module)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import UsageError


class Example:
    """A row of data: attribute and item access to its fields, and which of them are inputs.

    `Example(review="...", label="positive").with_inputs("review")` marks `review` as input; `inputs()` and
    `labels()` split the row accordingly.
    """

    __slots__ = ("_data", "_input_keys")

    def __init__(self, base: dict[str, Any] | Example | None = None, /, **fields: Any) -> None:
        data: dict[str, Any] = {}
        keys: frozenset[str] | None = None
        if isinstance(base, Example):
            data.update(base._data)
            keys = base._input_keys
        elif base is not None:
            data.update(base)
        data.update(fields)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_input_keys", keys)

    # -- field access -----------------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; fields: {sorted(self._data)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self) -> list[str]:
        return list(self._data)

    def items(self) -> list[tuple[str, Any]]:
        return list(self._data.items())

    def toDict(self) -> dict[str, Any]:  # noqa: N802 - DSPy users know this name
        return dict(self._data)

    to_dict = toDict

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Example) and self._data == other._data and self._input_keys == other._input_keys

    def __hash__(self) -> int:
        return hash(json.dumps(self._data, sort_keys=True, default=str))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._data.items())
        return f"{type(self).__name__}({inner}) (inputs={sorted(self._input_keys or ())})"

    # -- inputs and labels ------------------------------------------------------------------------------------
    @property
    def input_keys(self) -> frozenset[str] | None:
        return self._input_keys

    def with_inputs(self, *keys: str) -> Example:
        """A copy that knows `keys` are its inputs; every other field is a label."""
        missing = [k for k in keys if k not in self._data]
        if missing:
            raise UsageError(f"with_inputs{keys}: {missing} not among the example's fields {sorted(self._data)}")
        new = type(self)(self._data)
        object.__setattr__(new, "_input_keys", frozenset(keys))
        return new

    def _need_keys(self) -> frozenset[str]:
        if self._input_keys is None:
            raise UsageError(
                "this Example does not know its inputs; call .with_inputs('field', ...) or load it with "
                "lp.Dataset(..., inputs=[...])"
            )
        return self._input_keys

    def inputs(self) -> Example:
        keys = self._need_keys()
        new = type(self)({k: v for k, v in self._data.items() if k in keys})
        object.__setattr__(new, "_input_keys", keys)
        return new

    def labels(self) -> Example:
        keys = self._need_keys()
        return type(self)({k: v for k, v in self._data.items() if k not in keys})

    def copy(self, **updates: Any) -> Example:
        new = type(self)(self._data, **updates)
        object.__setattr__(new, "_input_keys", self._input_keys)
        return new

    def without(self, *keys: str) -> Example:
        new = type(self)({k: v for k, v in self._data.items() if k not in keys})
        object.__setattr__(new, "_input_keys", self._input_keys)
        return new


class Prediction(Example):
    """What a module returns: its output fields as typed attributes.

    `completions` holds every sample when the LM was asked for n > 1 (the first is the prediction itself);
    `usage` lists the LM calls behind this prediction (retries and repairs included).
    """

    __slots__ = ("completions", "usage")

    def __init__(self, base: dict[str, Any] | Example | None = None, /, **fields: Any) -> None:
        super().__init__(base, **fields)
        object.__setattr__(self, "completions", [])
        object.__setattr__(self, "usage", [])

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("completions", "usage"):
            object.__setattr__(self, name, value)
        else:
            self._data[name] = value

    @classmethod
    def from_completions(cls, completions: Iterable[dict[str, Any]]) -> Prediction:
        comps = [dict(c) for c in completions]
        if not comps:
            raise UsageError("a Prediction needs at least one completion")
        pred = cls(comps[0])
        object.__setattr__(pred, "completions", [cls(c) for c in comps])
        return pred
