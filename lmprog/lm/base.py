"""The LM interface: request and response types, the Backend seam, and `LM`, which adds to any backend
the cache, retries with backoff, the usage ledger, budgets and a bounded history.

A backend only turns one `LMRequest` into one `BackendResult` (or raises an lmprog `LMError`); everything a
user relies on regardless of provider lives here, once.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import usage
from ..errors import LMError, ProviderError, RateLimitError, TimeoutError, UsageError

Message = dict[str, Any]

SAMPLING_PARAMS = ("temperature", "max_tokens", "stop", "seed", "n", "top_p", "top_k", "frequency_penalty",
                   "presence_penalty", "logit_bias", "response_format")


@dataclass(frozen=True)
class Constraint:
    """What a backend able to constrain decoding must enforce on the completion.

    `grammar` is a GBNF grammar for the whole completion text (llama.cpp); `json_schema` is a JSON schema the
    completion must satisfy as a JSON document. An adapter builds these from a signature's output types.
    """

    grammar: str | None = None
    json_schema: dict[str, Any] | None = None

    def key(self) -> dict[str, Any]:
        return {"grammar": self.grammar, "json_schema": self.json_schema}


@dataclass
class LMRequest:
    """One call: either chat `messages` or a raw `prompt` (completion backends), plus sampling params."""

    model: str
    messages: list[Message] | None = None
    prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    constraint: Constraint | None = None
    rollout_id: Any = None
    # Context for fakes (ScriptedLM renders dict answers with the active adapter); never part of the cache key.
    signature: Any = None
    adapter: Any = None

    def key_material(self) -> dict[str, Any]:
        """Everything that determines the answer; the cache hashes this (secrets are removed there)."""
        return {
            "model": self.model,
            "messages": self.messages,
            "prompt": self.prompt,
            "params": self.params,
            "constraint": self.constraint.key() if self.constraint else None,
            "rollout_id": self.rollout_id,
        }

    def as_text(self) -> str:
        """The request as one text (for fakes, history and chat backends given a prompt)."""
        if self.prompt is not None:
            return self.prompt
        return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in self.messages or [])


@dataclass
class BackendResult:
    """What a backend returns: one text per sample and what the call consumed."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None


@dataclass
class LMResponse:
    """What `LM.__call__` returns."""

    texts: list[str]
    record: usage.CallRecord
    records: list[usage.CallRecord]  # every attempt behind this response, retries included

    @property
    def text(self) -> str:
        return self.texts[0]


class Backend(Protocol):
    """The seam between `LM` and a provider. Implement `complete`; `acomplete` may run it in a thread."""

    default_adapter: str  # "chat", "json" or "completion"
    supports_grammar: bool
    supports_json_schema: bool
    is_network: bool

    def complete(self, request: LMRequest, timeout: float | None) -> BackendResult: ...


@dataclass
class HistoryEntry:
    model: str
    request: dict[str, Any]
    texts: list[str]
    record: usage.CallRecord
    when: float


class LM:
    """A language model: `lm(messages=[...])` or `lm(prompt="...")` → `LMResponse`.

    `model` is a litellm model string (`openai/gpt-4o-mini`, `anthropic/...`, `ollama/...`), `local/gemma-3-270m`
    for the embedded model, or `local:<path.gguf>`. Keyword defaults (temperature, max_tokens, stop, seed, n,
    api_base, api_key, ...) apply to every call and can be overridden per call.
    """

    def __init__(
        self,
        model: str,
        *,
        backend: Backend | None = None,
        cache: bool = True,
        num_retries: int = 3,
        retry_deadline: float = 120.0,
        timeout: float | None = 120.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        history_size: int = 200,
        **defaults: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise UsageError(f"LM model must be a non-empty string such as 'openai/gpt-4o-mini', got {model!r}")
        self.model = model
        self.cache = cache
        self.num_retries = num_retries
        self.retry_deadline = retry_deadline
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.defaults = dict(defaults)
        self.history: collections.deque[HistoryEntry] = collections.deque(maxlen=history_size)
        self._sleep: Callable[[float], None] = time.sleep
        self.backend = backend if backend is not None else self._make_backend()
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------------------------------------
    def _make_backend(self) -> Backend:
        from . import make_backend

        return make_backend(self.model, self.defaults)

    def copy(self, **overrides: Any) -> LM:
        """A new LM with the same backend and defaults, some of them overridden (history starts empty)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.defaults = dict(self.defaults)
        for k, v in overrides.items():
            if k in ("cache", "num_retries", "retry_deadline", "timeout", "backoff_base", "backoff_max"):
                setattr(new, k, v)
            else:
                new.defaults[k] = v
        new.history = collections.deque(maxlen=self.history.maxlen)
        new._lock = threading.Lock()
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> LM:
        return self  # an LM is a shared resource (connections, loaded weights): programs share it on copy

    @property
    def default_adapter(self) -> str:
        return self.backend.default_adapter

    def __repr__(self) -> str:
        return f"LM({self.model!r})"

    # -- calling --------------------------------------------------------------------------------------------
    def build_request(
        self,
        messages: list[Message] | None = None,
        *,
        prompt: str | None = None,
        constraint: Constraint | None = None,
        rollout_id: Any = None,
        signature: Any = None,
        adapter: Any = None,
        **params: Any,
    ) -> LMRequest:
        if (messages is None) == (prompt is None):
            raise UsageError("call an LM with exactly one of messages=[...] or prompt='...'")
        merged = {**self.defaults, **params}
        return LMRequest(
            model=self.model, messages=messages, prompt=prompt, params=merged, constraint=constraint,
            rollout_id=rollout_id, signature=signature, adapter=adapter,
        )

    def __call__(
        self,
        messages: list[Message] | None = None,
        *,
        prompt: str | None = None,
        constraint: Constraint | None = None,
        cache: bool | None = None,
        rollout_id: Any = None,
        signature: Any = None,
        adapter: Any = None,
        kind: str = "call",
        **params: Any,
    ) -> LMResponse:
        req = self.build_request(messages, prompt=prompt, constraint=constraint, rollout_id=rollout_id,
                                 signature=signature, adapter=adapter, **params)
        return self.forward(req, cache=cache, kind=kind)

    async def acall(self, messages: list[Message] | None = None, *, cache: bool | None = None,
                    kind: str = "call", **kwargs: Any) -> LMResponse:
        """Async call: the same cache, budgets, retries, ledger and history as a sync call. Backends with an
        `acomplete` coroutine are awaited natively; others run in a worker thread."""
        req = self.build_request(messages, **kwargs)
        return await self.aforward(req, cache=cache, kind=kind)

    def _use_cache(self, cache: bool | None) -> bool:
        from ..settings import settings

        if cache is not None:
            return cache
        return self.cache and settings().cache

    def _start(self, req: LMRequest, cache: bool | None, kind: str) -> tuple[Any, LMResponse | None]:
        """Cache lookup and the network switch, shared by the sync and async paths: (store, cached response)."""
        from ..settings import settings

        store = _get_cache() if self._use_cache(cache) else None
        if store is not None:
            t0 = time.perf_counter()
            hit = store.get(req)
            if hit is not None:
                rec = usage.CallRecord(model=self.model, role=usage.current_role(), prompt_tokens=hit.prompt_tokens,
                                       completion_tokens=hit.completion_tokens, cost=0.0,
                                       latency=time.perf_counter() - t0, cache_hit=True, kind=kind)
                usage.record(rec)
                self._remember(req, hit.texts, rec)
                return store, LMResponse(texts=list(hit.texts), record=rec, records=[rec])
        if getattr(self.backend, "is_network", False) and not settings().allow_network:
            raise UsageError(
                f"a network LM call to {self.model!r} was blocked: network LM calls are off here "
                "(lp.configure(allow_network=True) or LMPROG_ALLOW_NETWORK=1 turns them on); "
                "tests should use lmprog.testing.ScriptedLM or FunctionLM"
            )
        return store, None

    def _failed(self, exc: LMError, attempt: int, kind: str, t0: float, deadline: float,
                records: list[usage.CallRecord]) -> float:
        """Record a failed attempt; return the wait before the next one, or re-raise when it is final."""
        rec = usage.CallRecord(model=self.model, role=usage.current_role(), latency=time.perf_counter() - t0,
                               ok=False, error=f"{type(exc).__name__}: {exc}", kind=kind if attempt == 1 else "retry")
        usage.record(rec)
        records.append(rec)
        wait = self._retry_wait(exc, attempt, deadline)
        if wait is None:
            exc.attempts = attempt
            raise exc
        return wait

    def _succeeded(self, req: LMRequest, result: BackendResult, attempt: int, kind: str, t0: float, store: Any,
                   records: list[usage.CallRecord]) -> LMResponse:
        rec = usage.CallRecord(model=self.model, role=usage.current_role(), prompt_tokens=result.prompt_tokens,
                               completion_tokens=result.completion_tokens, cost=result.cost or 0.0,
                               latency=time.perf_counter() - t0, kind=kind if attempt == 1 else "retry")
        usage.record(rec)
        records.append(rec)
        if store is not None:
            store.put(req, result)
        self._remember(req, result.texts, rec)
        return LMResponse(texts=list(result.texts), record=rec, records=records)

    def forward(self, req: LMRequest, *, cache: bool | None = None, kind: str = "call") -> LMResponse:
        """Cache lookup → budget check → backend with retries → ledger and history."""
        store, hit = self._start(req, cache, kind)
        if hit is not None:
            return hit
        records: list[usage.CallRecord] = []
        deadline = time.monotonic() + self.retry_deadline
        attempt = 0
        while True:
            reserved = usage.check_budgets()
            attempt += 1
            t0 = time.perf_counter()
            try:
                result = self.backend.complete(req, self.timeout)
            except LMError as exc:
                self._sleep(self._failed(exc, attempt, kind, t0, deadline, records))
                continue
            except BaseException:
                usage.release(reserved)
                raise
            return self._succeeded(req, result, attempt, kind, t0, store, records)

    async def aforward(self, req: LMRequest, *, cache: bool | None = None, kind: str = "call") -> LMResponse:
        """`forward` on an event loop: only the backend call and the waits between retries are awaited."""
        import asyncio

        store, hit = self._start(req, cache, kind)
        if hit is not None:
            return hit
        acomplete = getattr(self.backend, "acomplete", None)
        if acomplete is None:
            from ..settings import run_in_context

            complete = run_in_context(self.backend.complete)

            async def acomplete(r: LMRequest, timeout: float | None) -> BackendResult:
                return await asyncio.to_thread(complete, r, timeout)

        records: list[usage.CallRecord] = []
        deadline = time.monotonic() + self.retry_deadline
        attempt = 0
        while True:
            reserved = usage.check_budgets()
            attempt += 1
            t0 = time.perf_counter()
            try:
                result = await acomplete(req, self.timeout)
            except BaseException as exc:
                if not isinstance(exc, LMError):
                    usage.release(reserved)
                    raise
                wait = self._failed(exc, attempt, kind, t0, deadline, records)
                if self._sleep is time.sleep:
                    await asyncio.sleep(wait)
                else:  # a replaced sleep (tests capturing waits) is honoured on this path too
                    self._sleep(wait)
                continue
            return self._succeeded(req, result, attempt, kind, t0, store, records)

    def _retry_wait(self, exc: LMError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None when the error is final."""
        retryable = isinstance(exc, (RateLimitError, TimeoutError)) or (
            isinstance(exc, ProviderError) and exc.retryable
        )
        if not retryable or attempt > self.num_retries:
            return None
        hinted = getattr(exc, "retry_after", None)
        if hinted is not None:
            wait = float(hinted)
        else:
            wait = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
            wait *= random.uniform(0.5, 1.0)  # jitter: parallel callers do not retry in lockstep
        if time.monotonic() + wait > deadline:
            return None
        return wait

    def _remember(self, req: LMRequest, texts: list[str], rec: usage.CallRecord) -> None:
        from ..cache import redact

        # Secrets can only sit in the parameters (api_key, headers); messages and prompts are kept as they are.
        request = {"messages": req.messages, "prompt": req.prompt, "params": redact(req.params)}
        entry = HistoryEntry(model=self.model, request=request, texts=list(texts), record=rec, when=time.time())
        with self._lock:
            self.history.append(entry)

    def inspect_history(self, n: int = 1, file: Any = None) -> str:
        """Print (and return) the last `n` calls readably: the request text, the answer, the usage."""
        with self._lock:
            entries = list(self.history)[-n:]
        parts = []
        for e in entries:
            r = e.record
            head = (f"── {e.model} · {time.strftime('%H:%M:%S', time.localtime(e.when))} · "
                    f"{r.prompt_tokens}+{r.completion_tokens} tokens · {r.latency * 1000:.0f} ms"
                    f"{' · cache hit' if r.cache_hit else ''}")
            req = e.request
            if req.get("prompt") is not None:
                body = req["prompt"]
            else:
                body = "\n".join(f"[{m.get('role')}] {m.get('content')}" for m in req.get("messages") or [])
            answer = "\n".join(f"[answer {i}] {t}" for i, t in enumerate(e.texts)) if len(e.texts) > 1 else (
                f"[answer] {e.texts[0] if e.texts else ''}")
            parts.append(f"{head}\n{body}\n{answer}")
        text = "\n\n".join(parts)
        print(text, file=file)
        return text


def _get_cache() -> Any:
    from ..cache import get_cache

    return get_cache()
