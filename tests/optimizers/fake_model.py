"""A fake chat model for optimizer tests that sees what the optimizer shows it.

It reads the chat prompt back into fields, so a test knows, for every LM call, the current inputs, the demos
shown, the usage role it was billed under, the rollout id and the sampling parameters; a policy decides the
answer from that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lmprog as lp
from lmprog import usage
from lmprog.testing import FunctionLM

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n|\n\[\[|\Z)", re.S)


def fields_of(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in _FIELD.findall(text) if k != "completed"}


@dataclass
class Call:
    """One LM call as the model saw it."""

    role: str
    inputs: dict[str, str]
    demos: list[dict[str, str]]
    rollout_id: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def demo_questions(self) -> list[str]:
        return [d["question"] for d in self.demos if "question" in d]


class Killed(BaseException):
    """Stands in for the process dying mid-compile (nothing in lmprog may swallow it)."""


class FakeModel:
    """A FunctionLM whose answers come from `policy(call)`; every call is kept in `calls`. With `die_at`, it
    raises `die` once, on that attempt (1-based)."""

    def __init__(self, policy: Callable[[Call], dict[str, Any]], model: str = "fake/task", cache: bool = False,
                 die_at: int | None = None, die: Callable[[], BaseException] = Killed) -> None:
        self.policy = policy
        self.calls: list[Call] = []
        self.die_at = die_at
        self.die = die
        self.attempts = 0
        self.lm = FunctionLM(self._answer, model=model, cache=cache)

    def _answer(self, messages: list[dict[str, Any]], request: Any = None, **params: Any) -> dict[str, Any]:
        self.attempts += 1
        if self.attempts == self.die_at:
            raise self.die()
        demos = [fields_of(messages[i]["content"]) | fields_of(messages[i + 1]["content"])
                 for i in range(1, len(messages) - 1, 2)]
        call = Call(usage.current_role(), fields_of(messages[-1]["content"]), demos, request.rollout_id, params)
        self.calls.append(call)
        call.answer = self.policy(call)
        return call.answer

    def role(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.role == name]


def data(lo: int, hi: int, **extra: str) -> list[lp.Example]:
    return [lp.Example(question=f"q{i}", answer=f"a{i}", **extra).with_inputs("question") for i in range(lo, hi)]


def right(call: Call) -> str:
    return "a" + call.inputs["question"][1:]


def right_with_demos(call: Call) -> dict[str, Any]:
    """Answers correctly only when the prompt shows at least one demo."""
    return {"answer": right(call) if call.demos else "wrong"}


def right_with_q3(call: Call) -> dict[str, Any]:
    """Only the demo for q3 teaches the model: a search must find a set that holds it."""
    return {"answer": right(call) if "q3" in call.demo_questions else "wrong"}
