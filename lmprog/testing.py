"""Fakes for tests — yours and ours. They are real `LM`s with a scripted backend, so adapters, the ledger,
history and budgets all run unchanged; only the model is replaced.

    lm = ScriptedLM([{"label": "positive"}, "Label: negative"])   # in order
    lm = ScriptedLM({"delight": {"label": "positive"}})           # by a substring of the request
    lm = FunctionLM(lambda messages, **params: "...")             # full control

A dict answer is rendered by whichever adapter made the call, so every adapter's parser is exercised.
Network LM calls can be blocked for a whole test session with `block_network()` (the lmprog test suite does
this through LMPROG_ALLOW_NETWORK=0).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import UsageError
from .lm.base import LM, BackendResult, LMRequest, Message
from .settings import configure

Answer = str | Mapping[str, Any]


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _FakeBackend:
    default_adapter = "chat"
    supports_grammar = False
    supports_json_schema = False
    is_network = False

    def __init__(self, answer: Callable[[LMRequest], str | list[str]], default_adapter: str) -> None:
        self._answer = answer
        self.default_adapter = default_adapter

    def complete(self, request: LMRequest, timeout: float | None) -> BackendResult:
        n = int(request.params.get("n") or 1)
        texts: list[str] = []
        for _ in range(n):
            out = self._answer(request)
            texts.extend(out if isinstance(out, list) else [out])
        texts = texts[:n]
        return BackendResult(texts=texts, prompt_tokens=_estimate_tokens(request.as_text()),
                             completion_tokens=sum(_estimate_tokens(t) for t in texts), cost=0.0)


def _render(answer: Answer, request: LMRequest) -> str:
    if isinstance(answer, str):
        return answer
    if request.adapter is None or request.signature is None:
        raise UsageError("a dict answer needs a call made by a predictor (its adapter renders it); "
                         "give raw text to call the LM directly")
    return request.adapter.render_outputs(request.signature, dict(answer))


class ScriptedLM(LM):
    """Answers from a script: a list (in order; the last answer repeats when `cycle=False` runs out → error)
    or a mapping from a substring of the request text to an answer. Answers are dicts of output values or
    raw text. Cache off by default so that each call consumes the script."""

    def __init__(self, responses: Iterable[Answer] | Mapping[str, Answer], *, default: Answer | None = None,
                 cycle: bool = False, model: str = "scripted", adapter: str = "chat", cache: bool = False,
                 **kwargs: Any) -> None:
        self._lock_script = threading.Lock()
        self.default = default
        self.cycle = cycle
        if isinstance(responses, Mapping) and not any(isinstance(k, int) for k in responses):
            self.by_substring: dict[str, Answer] | None = dict(responses)
            self.responses: list[Answer] = []
        else:
            self.by_substring = None
            self.responses = list(responses)  # type: ignore[arg-type]
        self.calls = 0
        super().__init__(model, backend=_FakeBackend(self._next, adapter), cache=cache, **kwargs)

    def _next(self, request: LMRequest) -> str:
        with self._lock_script:
            i = self.calls
            self.calls += 1
        if self.by_substring is not None:
            text = request.as_text()
            # The last user turn holds the current inputs; match there first so demos do not shadow it.
            last = request.messages[-1]["content"] if request.messages else text.rsplit("\n---", 1)[-1]
            for hay in (last, text):
                for key, answer in self.by_substring.items():
                    if key in hay:
                        return _render(answer, request)
            if self.default is not None:
                return _render(self.default, request)
            raise UsageError(f"ScriptedLM has no answer for this request (no key of {list(self.by_substring)} "
                             f"occurs in it); pass default=...")
        if i >= len(self.responses):
            if self.cycle and self.responses:
                return _render(self.responses[i % len(self.responses)], request)
            if self.default is not None:
                return _render(self.default, request)
            raise UsageError(f"ScriptedLM ran out of answers after {len(self.responses)} call(s); "
                             "add answers, pass cycle=True or default=...")
        return _render(self.responses[i], request)


class FunctionLM(LM):
    """An LM whose answer is `fn(messages, **params) -> str` (a prompt arrives as one user message).

    `fn` also receives `request=` (the LMRequest) if it accepts it, so it can render dicts with
    `request.adapter.render_outputs(request.signature, values)`."""

    def __init__(self, fn: Callable[..., str | Mapping[str, Any]], *, model: str = "function",
                 adapter: str = "chat", cache: bool = False, **kwargs: Any) -> None:
        import inspect

        self.fn = fn
        try:
            params = inspect.signature(fn).parameters
            self._wants_request = "request" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            self._wants_request = False
        super().__init__(model, backend=_FakeBackend(self._call, adapter), cache=cache, **kwargs)

    def _call(self, request: LMRequest) -> str:
        messages: list[Message] = request.messages or [{"role": "user", "content": request.prompt or ""}]
        extra = {"request": request} if self._wants_request else {}
        out = self.fn(messages, **request.params, **extra)
        return _render(out, request)


def block_network(blocked: bool = True) -> None:
    """Make every network LM call raise (or allow it again). Loopback servers stay reachable."""
    configure(allow_network=not blocked)
