"""Settings: `lp.configure(...)` for process defaults, `with lp.context(...)` for scoped overrides.

Scoped overrides live in a contextvar, so they are isolated per thread and per asyncio task; lmprog's own
thread pools run their work in a copy of the caller's context (`run_in_context`). `configure()` swaps one
immutable snapshot of defaults, so no test ever has to reset mutable global state.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import UsageError

if TYPE_CHECKING:
    from .adapters.base import Adapter
    from .lm.base import LM

T = TypeVar("T")

DEFAULT_LM = "local/gemma-3-270m"


@dataclass(frozen=True)
class Settings:
    """The knobs a program reads while it runs. Every field can be set by `configure` or `context`."""

    lm: LM | None = None
    """The LM used by predictors that were not given one; None means `LMPROG_LM` or the embedded Gemma."""
    adapter: Adapter | None = None
    """How signatures become prompts and text becomes fields; None means the LM's preferred adapter."""
    cache: bool = True
    """Whether LM calls read and write the cache."""
    threads: int = 8
    """Default worker threads for `Module.batch` and `evaluate`."""
    trace: list[Any] | None = None
    """When a list, every predictor call appends (predictor, inputs, prediction); optimizers read it."""
    allow_network: bool = True
    """When False, an LM call that would leave the process raises (the test suite turns this off)."""


_FIELDS = {f.name for f in dataclasses.fields(Settings)}
_root_lock = threading.Lock()
_root = Settings(allow_network=os.environ.get("LMPROG_ALLOW_NETWORK", "1") not in ("0", "false", "no"))
_overrides: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("lmprog_settings", default=None)


def _check(kwargs: dict[str, Any]) -> None:
    unknown = sorted(set(kwargs) - _FIELDS)
    if unknown:
        raise UsageError(f"unknown setting(s) {unknown}; known settings are {sorted(_FIELDS)}")
    if isinstance(kwargs.get("lm"), str):  # configure(lm="openai/gpt-4o-mini") means that model
        kwargs["lm"] = as_lm(kwargs["lm"])


def as_lm(lm: Any) -> Any:
    """An LM from an LM or a model string; anything else is a mistake worth naming."""
    from .lm.base import LM

    if lm is None or isinstance(lm, LM):
        return lm
    if isinstance(lm, str):
        return LM(lm)
    raise UsageError(f"lm must be an lp.LM or a model string such as 'openai/gpt-4o-mini', got {lm!r}")


def settings() -> Settings:
    """The settings in force here: the scoped overrides if any, else the process defaults."""
    return _overrides.get() or _root


def configure(**kwargs: Any) -> None:
    """Set process-wide defaults, e.g. `lp.configure(lm=lp.LM("openai/gpt-4o-mini"))`."""
    global _root
    _check(kwargs)
    with _root_lock:
        _root = dataclasses.replace(_root, **kwargs)


@contextlib.contextmanager
def context(**kwargs: Any) -> Iterator[Settings]:
    """Override settings inside the block only, for this thread or task and the pools it starts."""
    _check(kwargs)
    new = dataclasses.replace(settings(), **kwargs)
    token = _overrides.set(new)
    try:
        yield new
    finally:
        _overrides.reset(token)


_default_lm: dict[str, LM] = {}
_default_lm_lock = threading.Lock()


def current_lm() -> LM:
    """The LM in force: the configured one, else `LMPROG_LM`, else the embedded Gemma 3 270M."""
    lm = settings().lm
    if lm is not None:
        return lm
    name = os.environ.get("LMPROG_LM") or DEFAULT_LM
    with _default_lm_lock:
        if name not in _default_lm:
            from .lm import LM

            _default_lm[name] = LM(name)
        return _default_lm[name]


def inspect_history(n: int = 1) -> str:
    """Print (and return) the last `n` calls of the LM in force (see `LM.inspect_history`)."""
    return current_lm().inspect_history(n)


def run_in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """Wrap `fn` so that it runs in a copy of the current context (for worker threads)."""
    ctx = contextvars.copy_context()

    def call(*args: Any, **kwargs: Any) -> T:
        return ctx.copy().run(fn, *args, **kwargs)

    return call


def thread_map(fn: Callable[[Any], T], items: list[Any], threads: int | None = None) -> list[T]:
    """Map `fn` over items in a thread pool, keeping input order and the caller's context."""
    n = threads or settings().threads
    if n <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    wrapped = run_in_context(fn)
    with ThreadPoolExecutor(max_workers=min(n, len(items))) as pool:
        return list(pool.map(wrapped, items))
