"""A client-side rate limiter (requests and tokens per minute) shared by every thread using one LM.

Each limit is a token bucket refilled continuously at `limit / 60` per second and holding at most
`burst_seconds` worth, so sixty threads starting together are spread out instead of stampeding a
provider. A caller *reserves* capacity under a short lock, which may drive the bucket negative, and then
sleeps outside the lock for the debt it created: waits are first come, first served, and no thread holds
the lock while sleeping. Tokens are not known before a call, so the caller reserves an estimate and
`settle()`s the difference once the provider reports the real count.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from ..errors import UsageError


class _Bucket:
    def __init__(self, per_minute: float, burst_seconds: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.stamp = now

    def take(self, amount: float, now: float) -> float:
        """Remove `amount` (may go negative) and return the seconds until the bucket is back at zero."""
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate


class RateLimiter:
    """Blocks callers so that at most `rpm` requests and `tpm` tokens go out per minute (either may be None)."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *, burst_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for name, v in (("rpm", rpm), ("tpm", tpm)):
            if v is not None and v <= 0:
                raise UsageError(f"{name} must be a positive number per minute (or None for no limit), got {v!r}")
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._lock = threading.Lock()
        start = clock()
        self._requests = _Bucket(rpm, burst_seconds, start) if rpm else None
        self._tokens = _Bucket(tpm, burst_seconds, start) if tpm else None
        self.waited = 0.0
        """Total seconds callers were told to wait (a figure for reports and tests)."""

    @classmethod
    def from_options(cls, rpm: float | None, tpm: float | None) -> RateLimiter | None:
        return cls(rpm, tpm) if (rpm or tpm) else None

    def reserve(self, tokens: int = 0) -> float:
        """Take one request and `tokens` tokens; return how long the caller must wait before sending."""
        with self._lock:
            now = self._clock()
            wait = 0.0
            if self._requests is not None:
                wait = max(wait, self._requests.take(1, now))
            if self._tokens is not None and tokens:
                wait = max(wait, self._tokens.take(tokens, now))
            self.waited += wait
            return wait

    def settle(self, estimated: int, actual: int) -> None:
        """Correct a token reservation once the real count is known (refunds or charges the difference)."""
        if self._tokens is None or actual == estimated:
            return
        with self._lock:
            self._tokens.take(actual - estimated, self._clock())

    def acquire(self, tokens: int = 0, sleep: Callable[[float], None] = time.sleep) -> None:
        """Reserve and sleep for as long as needed (blocking the calling thread only)."""
        wait = self.reserve(tokens)
        if wait > 0:
            sleep(wait)

    async def aacquire(self, tokens: int = 0) -> None:
        """Reserve and sleep without blocking the event loop."""
        wait = self.reserve(tokens)
        if wait > 0:
            await asyncio.sleep(wait)


def estimate_tokens(text_chars: int, max_tokens: int | None) -> int:
    """A provider-independent token estimate for reservations: ~4 characters per token plus the output cap."""
    return text_chars // 4 + (max_tokens or 256)
