"""Metrics: functions `(example, prediction, trace=None) -> float | bool` that score one prediction.

By default a metric compares the example's label fields (`example.labels()`) with the prediction's fields of
the same names; `field=` picks one field. The built-ins are configured by calling them without an example:

    lp.metrics.exact_match(ex, pred)                     # all label fields, SQuAD-style normalization
    em_answer = lp.metrics.exact_match(field="answer")  # a new metric on one field
    close = lp.metrics.numeric(tolerance=0.01)

`Judge` asks an LM for a verdict; it is built on a Predict, so the judge itself can be compiled.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable
from typing import Any

from .errors import UsageError
from .example import Example

Metric = Callable[..., "float | bool"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def normalize_text(text: Any) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (as SQuAD does)."""
    s = str(text).lower().translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(getattr(value, "value", value)) if _is_enum(value) else str(value)


def _is_enum(value: Any) -> bool:
    import enum

    return isinstance(value, enum.Enum)


def label_pairs(example: Example, prediction: Any, field: str | None = None) -> list[tuple[str, Any, Any]]:
    """(field, expected, predicted) for the fields a metric compares.

    With `field` that one field; otherwise every label field of the example that the prediction also has
    (fields only the prediction has, like a chain-of-thought `reasoning`, are not scored).
    """
    if field is not None:
        if field not in example:
            raise UsageError(f"metric field {field!r} is not in the example; its fields are {sorted(example.keys())}")
        return [(field, example[field], _get(prediction, field))]
    labels = example.labels() if example.input_keys is not None else example
    names = [k for k in labels.keys() if _has(prediction, k)]
    if not names:
        raise UsageError(
            f"the prediction has none of the example's label fields {sorted(labels.keys())} "
            f"(prediction fields: {sorted(_keys(prediction))}); pass field='...' to the metric"
        )
    return [(k, labels[k], _get(prediction, k)) for k in names]


def _has(prediction: Any, name: str) -> bool:
    return name in prediction if isinstance(prediction, (Example, dict)) else hasattr(prediction, name)


def _get(prediction: Any, name: str) -> Any:
    if isinstance(prediction, (Example, dict)):
        return prediction.get(name)
    return getattr(prediction, name, None)


def _keys(prediction: Any) -> list[str]:
    if isinstance(prediction, (Example, dict)):
        return list(prediction.keys())
    return [k for k in vars(prediction)] if hasattr(prediction, "__dict__") else []


def _best(expected: Any, predicted: Any, compare: Callable[[Any, Any], float]) -> float:
    # A list of acceptable answers (SQuAD style) scores as the best match, unless the prediction is a list too.
    if isinstance(expected, (list, tuple, set)) and not isinstance(predicted, (list, tuple, set)):
        return max((compare(e, predicted) for e in expected), default=0.0)
    return compare(expected, predicted)


class FieldMetric:
    """A metric built from a per-field comparison; call it without an example to configure a new one."""

    def __init__(self, name: str, compare: Callable[..., float], binary: bool, field: str | None = None,
                 **options: Any) -> None:
        self.name = name
        self._compare = compare
        self.binary = binary
        self.field = field
        self.options = options
        self.__name__ = name

    def __call__(self, example: Example | None = None, prediction: Any = None, trace: Any = None,
                 **options: Any) -> Any:
        if example is None:
            return self.configure(**options)
        if options:
            raise UsageError(f"{self.name}(example, prediction) takes no options; configure first: "
                             f"m = {self.name}({', '.join(f'{k}=...' for k in options)})")
        pairs = label_pairs(example, prediction, self.field)
        scores = [_best(exp, got, lambda e, g: self._compare(e, g, **self.options)) for _, exp, got in pairs]
        if self.binary:
            return all(s >= 1.0 for s in scores)
        return math.fsum(scores) / len(scores)

    def configure(self, field: str | None = None, **options: Any) -> FieldMetric:
        """A copy with a chosen field and options, e.g. `exact_match(field="answer")`."""
        return FieldMetric(self.name, self._compare, self.binary, field if field is not None else self.field,
                           **{**self.options, **options})

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{self.name}(field={self.field!r}{opts})"


def _exact(expected: Any, predicted: Any, normalize: bool = True) -> float:
    if isinstance(expected, (list, dict)) or isinstance(predicted, (list, dict)):
        return float(expected == predicted)
    e, p = _as_text(expected), _as_text(predicted)
    if normalize:
        e, p = normalize_text(e), normalize_text(p)
    else:
        e, p = e.strip(), p.strip()
    return float(e == p)


def _token_f1(expected: Any, predicted: Any) -> float:
    gold = normalize_text(_as_text(expected)).split()
    pred = normalize_text(_as_text(predicted)).split()
    if not gold or not pred:
        return float(gold == pred)
    common = sum((Counter(gold) & Counter(pred)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _contains(expected: Any, predicted: Any, normalize: bool = True) -> float:
    e, p = _as_text(expected), _as_text(predicted)
    if normalize:
        e, p = normalize_text(e), normalize_text(p)
        # Compare on word boundaries so that "no" is not found inside "know".
        return float(bool(e) and f" {e} " in f" {p} ")
    return float(bool(e) and e in p)


def parse_number(value: Any) -> float | None:
    """A number from a value: numbers as they are, text as its last number ("... so the answer is 1,234")."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    found = _NUMBER.findall(str(value))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _numeric(expected: Any, predicted: Any, tolerance: float = 1e-6, relative: float = 0.0) -> float:
    e, p = parse_number(expected), parse_number(predicted)
    if e is None or p is None:
        return 0.0
    return float(math.isclose(e, p, abs_tol=tolerance, rel_tol=relative))


exact_match = FieldMetric("exact_match", _exact, binary=True, normalize=True)
"""True when the prediction equals the label after normalization (case, punctuation, articles, spaces)."""

f1 = FieldMetric("f1", _token_f1, binary=False)
"""Token-level F1 between label and prediction after normalization (mean over the compared fields)."""

contains = FieldMetric("contains", _contains, binary=True, normalize=True)
"""True when the normalized label appears, on word boundaries, inside the normalized prediction."""


def numeric(tolerance: float = 1e-6, relative: float = 0.0, field: str | None = None) -> FieldMetric:
    """A metric that is True when the numbers agree within `tolerance` (absolute) or `relative` tolerance.

    Text is read as its last number, so "The total is 1,234." matches 1234.
    """
    if tolerance < 0 or relative < 0:
        raise UsageError(f"numeric tolerances must be >= 0, got tolerance={tolerance}, relative={relative}")
    return FieldMetric("numeric", _numeric, binary=True, field=field, tolerance=tolerance, relative=relative)


def _render(fields: dict[str, Any]) -> str:
    if len(fields) == 1:
        return _as_text(next(iter(fields.values())))
    return "\n".join(f"{k}: {_as_text(v)}" for k, v in fields.items())


class Judge:
    """An LM-judge metric: a Predict reads the inputs, the reference answer and the prediction, gives a verdict.

    The default signature is `question, reference, answer -> verdict: bool`; pass your own signature with the
    same input names and a `verdict` output (bool, or a number in [0, 1]). `judge.program` is an ordinary
    Predict, so it can be compiled against human verdicts like any program:
    `judge.program = optimizer.compile(judge.program, trainset=labelled_verdicts, valset=...)`.
    The judge's LM calls are labelled role "metric" in the usage ledger and never enter an optimizer's trace.
    """

    DEFAULT_INSTRUCTIONS = (
        "Judge whether the answer is correct for the question, using the reference answer as the truth. "
        "Wording may differ; the meaning must agree. Give verdict true if correct, false otherwise."
    )

    def __init__(self, signature: Any = None, *, instructions: str | None = None, lm: Any = None,
                 field: str | None = None, output: str = "verdict", program: Any = None) -> None:
        from .predict import Predict

        if program is None:
            from .signature import ensure_signature

            if signature is None:
                signature = "question: str, reference: str, answer: str -> verdict: bool"
                instructions = instructions or self.DEFAULT_INSTRUCTIONS
            program = Predict(ensure_signature(signature, instructions))
        self.program = program
        self.lm = lm
        self.field = field
        self.output = output
        self.__name__ = "judge"

    def named_predictors(self) -> list[tuple[str, Any]]:
        """The judge's predictor, so optimizers and `save` treat it like any program."""
        return [("program", self.program)]

    def __call__(self, example: Example, prediction: Any, trace: Any = None) -> float:
        from . import usage
        from .settings import context

        pairs = label_pairs(example, prediction, self.field)
        question = _render(dict(example.inputs().items())) if example.input_keys is not None else ""
        reference = _render({k: exp for k, exp, _ in pairs})
        answer = _render({k: got for k, _, got in pairs})
        overrides: dict[str, Any] = {"trace": None}
        if self.lm is not None:
            overrides["lm"] = self.lm
        with usage.role("metric"), context(**overrides):
            verdict_pred = self.program(question=question, reference=reference, answer=answer)
        verdict = _get(verdict_pred, self.output)
        if isinstance(verdict, bool):
            return 1.0 if verdict else 0.0
        number = parse_number(verdict)
        if number is None:
            raise UsageError(f"the judge's {self.output!r} output {verdict!r} is neither a bool nor a number")
        return min(1.0, max(0.0, number))

    def __repr__(self) -> str:
        return f"Judge({self.program!r})"
