"""The usage ledger: every LM call is recorded into the trackers and budgets active in the caller's context.

`with lp.track() as t:` collects calls; `with lp.budget(max_calls=...)` refuses the call that would cross a
limit. Both live in contextvars, so thread pools started by lmprog (which copy the caller's context) feed
the same tracker, while unrelated threads and tasks stay apart.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from .errors import BudgetExceeded, UsageError


@dataclass(frozen=True)
class CallRecord:
    """One LM call (one attempt: a retry or a repair is its own record)."""

    model: str
    role: str = "task"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: float = 0.0
    cache_hit: bool = False
    ok: bool = True
    error: str | None = None
    kind: str = "call"  # "call", "retry" or "repair"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Totals:
    """Sums over a set of call records."""

    calls: int = 0
    cache_hits: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def billed_calls(self) -> int:
        """Calls that reached a model (cache hits cost nothing)."""
        return self.calls - self.cache_hits

    def add(self, rec: CallRecord) -> None:
        self.calls += 1
        self.cache_hits += rec.cache_hit
        self.failed += not rec.ok
        if not rec.cache_hit:
            self.prompt_tokens += rec.prompt_tokens
            self.completion_tokens += rec.completion_tokens
            self.cost += rec.cost
        self.latency += rec.latency

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        d["billed_calls"] = self.billed_calls
        return d


def totals_of(records: list[CallRecord]) -> Totals:
    t = Totals()
    for r in records:
        t.add(r)
    return t


class Tracker:
    """Collects every call made inside its `with` block (threads started by lmprog included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[CallRecord] = []

    def add(self, rec: CallRecord) -> None:
        with self._lock:
            self.records.append(rec)

    @property
    def totals(self) -> Totals:
        with self._lock:
            return totals_of(list(self.records))

    def by(self, key: str) -> dict[str, Totals]:
        """Totals grouped by a record attribute, e.g. `by("model")` or `by("role")`."""
        with self._lock:
            recs = list(self.records)
        out: dict[str, Totals] = {}
        for r in recs:
            out.setdefault(str(getattr(r, key)), Totals()).add(r)
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "total": self.totals.to_dict(),
            "by_model": {k: v.to_dict() for k, v in self.by("model").items()},
            "by_role": {k: v.to_dict() for k, v in self.by("role").items()},
        }


class Budget(Tracker):
    """A tracker with limits: `check()` raises BudgetExceeded before a call that would cross one."""

    def __init__(
        self,
        max_calls: int | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        max_seconds: float | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("max_calls", max_calls), ("max_tokens", max_tokens), ("max_cost", max_cost),
                        ("max_seconds", max_seconds)):
            if v is not None and v < 0:
                raise UsageError(f"budget {name} must be >= 0, got {v!r}")
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.max_seconds = max_seconds
        self.started = time.monotonic()
        self.exhausted: BudgetExceeded | None = None
        self._in_flight = 0  # calls that passed check() and have not been recorded yet (other threads)

    def add(self, rec: CallRecord) -> None:
        with self._lock:
            self.records.append(rec)
            if not rec.cache_hit and self._in_flight > 0:
                self._in_flight -= 1

    def release(self) -> None:
        """Give back a call reserved by check() that ended without a record (a non-LM exception)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def check(self) -> None:
        """Raise BudgetExceeded if one more call would cross a limit; otherwise reserve that call, so calls
        in flight on other threads count against the limit too."""
        with self._lock:
            self._check_locked()
            self._in_flight += 1

    def _check_locked(self) -> None:
        t = totals_of(self.records)
        calls = t.billed_calls + self._in_flight
        checks = (
            ("calls", self.max_calls, calls + 1, calls),
            ("tokens", self.max_tokens, t.total_tokens, t.total_tokens),
            ("cost", self.max_cost, t.cost, t.cost),
            ("seconds", self.max_seconds, time.monotonic() - self.started, time.monotonic() - self.started),
        )
        for kind, limit, would_be, spent in checks:
            if limit is None:
                continue
            crossed = would_be > limit if kind == "calls" else would_be >= limit
            if crossed:
                exc = BudgetExceeded(
                    f"budget of {limit} {kind} reached ({spent:g} spent); the call was not made",
                    kind=kind, limit=limit, spent=spent,
                )
                self.exhausted = exc
                raise exc

    @property
    def remaining_calls(self) -> int | None:
        return None if self.max_calls is None else max(0, self.max_calls - self.totals.billed_calls)


_trackers: contextvars.ContextVar[tuple[Tracker, ...]] = contextvars.ContextVar("lmprog_trackers", default=())
_role: contextvars.ContextVar[str] = contextvars.ContextVar("lmprog_role", default="task")


def current_role() -> str:
    return _role.get()


@contextlib.contextmanager
def role(name: str) -> Iterator[None]:
    """Label the calls made inside the block (e.g. "task", "teacher", "metric")."""
    token = _role.set(name)
    try:
        yield
    finally:
        _role.reset(token)


@contextlib.contextmanager
def _push(tracker: Tracker) -> Iterator[Any]:
    token = _trackers.set(_trackers.get() + (tracker,))
    try:
        yield tracker
    finally:
        _trackers.reset(token)


def track() -> contextlib.AbstractContextManager[Tracker]:
    """Record every LM call made inside the block: `with lp.track() as t: ...; t.totals, t.by("role")`."""
    return _push(Tracker())


def budget(
    max_calls: int | None = None,
    max_tokens: int | None = None,
    max_cost: float | None = None,
    max_seconds: float | None = None,
) -> contextlib.AbstractContextManager[Budget]:
    """Refuse, with BudgetExceeded, any LM call that would cross one of these limits inside the block."""
    return _push(Budget(max_calls, max_tokens, max_cost, max_seconds))


def check_budgets() -> tuple[Budget, ...]:
    """Called by the LM before a call that will reach a model (not before cache hits). Reserves the call in
    every budget in force and returns them; the call's record releases the reservation, and `release` must
    be called instead if the call ends without one."""
    budgets = tuple(t for t in _trackers.get() if isinstance(t, Budget))
    done: list[Budget] = []
    try:
        for b in budgets:
            b.check()
            done.append(b)
    except BudgetExceeded:
        release(tuple(done))
        raise
    return budgets


def release(budgets: tuple[Budget, ...]) -> None:
    for b in budgets:
        b.release()


def record(rec: CallRecord) -> None:
    for t in _trackers.get():
        t.add(rec)

