"""Modules: programs are plain Python classes whose attributes hold predictors and other modules.

Like a PyTorch module, a `Module` finds its learnable parts by walking its attributes: `named_predictors()`
yields each `Predict` under a dotted name (`query`, `hops.0.answer`), and `dump_state()`/`load_state()` save
and restore their instructions and demos by that name, never by position.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .example import Example, Prediction

if TYPE_CHECKING:
    from .predict import Predict


class Module:
    """Base class of programs: define `forward(**inputs) -> Prediction`, call the instance."""

    def forward(self, *args: Any, **kwargs: Any) -> Prediction:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Prediction:
        return self.forward(*args, **kwargs)

    # -- structure ------------------------------------------------------------------------------------------
    def named_predictors(self) -> list[tuple[str, Predict]]:
        """Every predictor in this program with its dotted attribute path, in definition order."""
        from .predict import Predict

        out: list[tuple[str, Predict]] = []
        seen: set[int] = set()

        def walk(obj: Any, prefix: str) -> None:
            if id(obj) in seen:
                return
            if isinstance(obj, Predict):
                seen.add(id(obj))
                out.append((prefix or "self", obj))
                return
            if isinstance(obj, Module):
                seen.add(id(obj))
                for name, value in vars(obj).items():
                    if not name.startswith("_"):
                        walk(value, f"{prefix}.{name}" if prefix else name)
            elif isinstance(obj, (list, tuple)):
                for i, value in enumerate(obj):
                    walk(value, f"{prefix}.{i}")
            elif isinstance(obj, dict):
                for k, value in obj.items():
                    walk(value, f"{prefix}.{k}")

        walk(self, "")
        return out

    def predictors(self) -> list[Predict]:
        return [p for _, p in self.named_predictors()]

    def deepcopy(self) -> Module:
        """An independent copy: predictors' state is copied, LMs and adapters are shared."""
        return copy.deepcopy(self)

    def reset_copy(self) -> Module:
        """A copy whose predictors have their signature's instruction and no demos."""
        new = self.deepcopy()
        for p in new.predictors():
            p.reset()
        return new

    # -- state ----------------------------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        """JSON-safe learnable state, keyed by predictor name: instruction, demos, signature fingerprint."""
        return {name: p.dump_predictor_state() for name, p in self.named_predictors()}

    def load_state(self, state: dict[str, Any]) -> Module:
        """Restore state saved by `dump_state`; refuses, naming the difference, if the program changed."""
        from .state import check_compatible

        named = dict(self.named_predictors())
        check_compatible(named, state)
        # Validate everything first, then assign: a bad demo in the last predictor leaves the program unchanged.
        new = {name: p.read_predictor_state(state[name], name) for name, p in named.items()}
        for name, p in named.items():
            p.instructions, p.demos = new[name]
        return self

    def save(self, path: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
        """Write the program's learnable state to a JSON file (no code, no pickle)."""
        from .state import save_program

        return save_program(self, Path(path), provenance or getattr(self, "provenance", None) or {})

    def load(self, path: str | Path) -> Module:
        """Load state saved by `save` into this program, in place; returns self."""
        from .state import read_program_file

        saved = read_program_file(Path(path))
        self.load_state(saved.state)
        self.provenance = saved.provenance
        return self

    # -- running many ---------------------------------------------------------------------------------------
    def batch(self, inputs: Sequence[dict[str, Any] | Example], threads: int | None = None,
              return_exceptions: bool = False) -> list[Any]:
        """Run on many inputs in threads, in input order, each in a copy of the caller's context."""
        from .settings import thread_map

        def one(item: dict[str, Any] | Example) -> Any:
            kwargs = _as_inputs(item)
            try:
                return self(**kwargs)
            except Exception as exc:  # noqa: BLE001 - returned to the caller when asked
                if return_exceptions:
                    return exc
                raise

        return thread_map(one, list(inputs), threads)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={p!r}" for n, p in self.named_predictors())
        return f"{type(self).__name__}({inner})"


def _as_inputs(item: dict[str, Any] | Example) -> dict[str, Any]:
    if isinstance(item, Example):
        return item.inputs().toDict() if item.input_keys is not None else item.toDict()
    if isinstance(item, dict):
        return item
    raise UsageError(f"batch() takes dicts or Examples of inputs, got {type(item).__name__}")
