"""lmprog: typed signatures, composable modules, and optimizers that compile LM programs against a dev set.

    import lmprog as lp
    classify = lp.Predict("review -> label: Literal['positive', 'negative']")
    classify(review="A delight.").label

Heavy parts (litellm, optuna, llama.cpp, numpy) load on first use, so `import lmprog` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import errors
from .adapters import Adapter, ChatAdapter, CompletionAdapter, JSONAdapter
from .dataset import Dataset
from .example import Example, Prediction
from .lm.base import LM, Constraint
from .module import Module
from .predict import ChainOfThought, Demo, Predict
from .settings import Settings, configure, context, inspect_history, settings
from .signature import InputField, OutputField, Signature, make_signature
from .state import load
from .usage import budget, track

__version__ = "0.1.0"

# Names resolved on first access: they live in modules with heavier imports, or in subpackages.
_LAZY = {
    "evaluate": ("lmprog.evaluate", "evaluate"),
    "EvalResult": ("lmprog.evaluate", "EvalResult"),
    "compare": ("lmprog.compare", "compare"),
    "Comparison": ("lmprog.compare", "Comparison"),
    "check_overlap": ("lmprog.overlap", "check_overlap"),
    "metrics": ("lmprog.metrics", None),
    "stats": ("lmprog.stats", None),
    "testing": ("lmprog.testing", None),
    "optimizers": ("lmprog.optimizers", None),
    "programs": ("lmprog.programs", None),
}

__all__ = [
    "Adapter", "ChainOfThought", "ChatAdapter", "Comparison", "CompletionAdapter", "Constraint", "Dataset", "Demo",
    "EvalResult", "Example", "InputField", "JSONAdapter", "LM", "Module", "OutputField", "Predict", "Prediction",
    "Settings", "Signature", "budget", "check_overlap", "compare", "configure", "context", "errors", "evaluate",
    "inspect_history", "load", "make_signature", "metrics", "optimizers", "programs", "settings", "stats", "testing",
    "track",
    "__version__",
]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'lmprog' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
