"""The public names of `lmprog` are exactly the intended set, and each resolves."""

from __future__ import annotations

import importlib

import pytest

import lmprog as lp

# The public API. Adding a name to lmprog.__all__ is a decision: write it here too.
EXPECTED = {
    "Adapter", "ChainOfThought", "ChatAdapter", "Comparison", "CompletionAdapter", "Constraint", "Dataset", "Demo",
    "EvalResult", "Example", "InputField", "JSONAdapter", "LM", "Module", "OutputField", "Predict", "Prediction",
    "Settings", "Signature", "budget", "check_overlap", "compare", "configure", "context", "errors", "evaluate",
    "inspect_history", "load", "make_signature", "metrics", "optimizers", "programs", "settings", "stats", "testing",
    "track",
    "__version__",
}

ERRORS = {"LMProgError", "LMError", "RateLimitError", "ProviderError", "TimeoutError", "OutputParseError",
          "BudgetExceeded", "UsageError"}


def test_all_is_exactly_the_intended_set() -> None:
    assert len(lp.__all__) == len(set(lp.__all__)), "duplicate names in __all__"
    assert set(lp.__all__) == EXPECTED


# Subpackages that later issues fill in; they resolve once their folders are packages.
LATER = {"optimizers", "programs"}


@pytest.mark.parametrize("name", sorted(EXPECTED - LATER))
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(lp, name) is not None
    assert name in dir(lp)


@pytest.mark.parametrize("name", sorted(LATER))
def test_subpackages_resolve_when_present(name: str) -> None:
    if importlib.util.find_spec(f"lmprog.{name}") is None:
        pytest.skip(f"lmprog.{name} is not installed in this tree yet")
    assert getattr(lp, name).__name__ == f"lmprog.{name}"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        lp.Nope  # noqa: B018


def test_public_classes_are_the_real_ones() -> None:
    from lmprog.adapters import ChatAdapter
    from lmprog.predict import Predict
    from lmprog.testing import ScriptedLM

    assert lp.ChatAdapter is ChatAdapter and lp.Predict is Predict
    assert lp.testing.ScriptedLM is ScriptedLM
    assert issubclass(lp.ChainOfThought, lp.Predict) and issubclass(lp.Predict, lp.Module)
    assert issubclass(lp.Prediction, lp.Example) and issubclass(lp.Demo, lp.Example)


def test_error_tree_is_reachable_as_lp_errors() -> None:
    e = lp.errors
    assert ERRORS <= set(vars(e))
    assert issubclass(e.LMError, e.LMProgError)
    assert all(issubclass(getattr(e, n), e.LMError) for n in ("RateLimitError", "ProviderError", "TimeoutError"))
    assert issubclass(e.OutputParseError, e.LMProgError) and issubclass(e.BudgetExceeded, e.LMProgError)
    assert not issubclass(e.UsageError, e.LMProgError) and issubclass(e.UsageError, ValueError)
    assert issubclass(e.TimeoutError, TimeoutError)  # the builtin catches it too


def test_version_is_a_string() -> None:
    assert isinstance(lp.__version__, str) and lp.__version__.count(".") >= 1
