"""Optimizers compile a program against data: `opt.compile(program, trainset, valset) -> program`.

Each returns a new program (the original is untouched) with a `.report` (a CompileReport).
"""

from __future__ import annotations

from typing import Any

from lmprog.errors import UsageError

from .base import Optimizer
from .bootstrap import BootstrapFewShot
from .labeled import LabeledFewShot
from .random_search import RandomSearch
from .report import Candidate, CompileReport

__all__ = ["BootstrapFewShot", "Candidate", "CompileReport", "LabeledFewShot", "Optimizer", "RandomSearch",
           "get_optimizer"]

_BY_NAME: dict[str, type[Optimizer]] = {
    "labeled": LabeledFewShot, "labelled": LabeledFewShot, "labeled_few_shot": LabeledFewShot,
    "bootstrap": BootstrapFewShot, "bootstrap_few_shot": BootstrapFewShot,
    "random_search": RandomSearch, "random": RandomSearch,
}


def get_optimizer(name: str, **kwargs: Any) -> Optimizer:
    """An optimizer by its CLI name: labeled, bootstrap or random_search."""
    cls = _BY_NAME.get(name.lower().replace("-", "_"))
    if cls is None:
        raise UsageError(f"unknown optimizer {name!r}; choose one of labeled, bootstrap, random_search")
    return cls(**kwargs)
