"""Every exception lmprog raises, in one place; this module imports nothing from lmprog.

    LMProgError                   root of failures a caller may handle at run time
    ├── LMError                   a language-model call failed
    │   ├── RateLimitError        the provider said 429 (carries retry_after)
    │   ├── ProviderError         the provider answered with an error (carries status_code, body)
    │   └── TimeoutError          no answer within the time allowed (also a builtin TimeoutError)
    ├── OutputParseError          the model's text could not be parsed into the signature's fields
    └── BudgetExceeded            the next call would cross a call, token, cost or time budget
    UsageError                    the developer used the API wrongly (a bad signature, argument, file)
"""

from __future__ import annotations

import builtins
from typing import Any


class LMProgError(Exception):
    """Root of the errors that happen while a program runs and that callers may handle."""


class UsageError(ValueError):
    """Error caused by a usage mistake by the application developer; the message says what to fix."""


class LMError(LMProgError):
    """A language-model call failed after the retries it was allowed."""

    def __init__(self, message: str, *, model: str | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.model = model
        self.attempts = attempts


class RateLimitError(LMError):
    """The provider refused the call for rate (HTTP 429); `retry_after` is in seconds when it said so."""

    def __init__(
        self, message: str, *, model: str | None = None, attempts: int = 1, retry_after: float | None = None
    ) -> None:
        super().__init__(message, model=model, attempts=attempts)
        self.retry_after = retry_after


class ProviderError(LMError):
    """The provider answered with an error status or a body that is not a valid completion."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        attempts: int = 1,
        status_code: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, model=model, attempts=attempts)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Server errors and connection failures (no status) are worth another attempt; 4xx are not."""
        return self.status_code is None or self.status_code >= 500 or self.status_code in (408, 409)


class TimeoutError(LMError, builtins.TimeoutError):  # noqa: A001 - deliberate: also catchable as the builtin
    """The model did not answer within the time allowed."""


class OutputParseError(LMProgError):
    """The model's output could not be parsed into the signature's fields, even after one repair attempt."""

    def __init__(self, message: str, *, raw: str, field: str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.raw = raw
        self.field = field
        self.reason = reason


class BudgetExceeded(LMProgError):
    """The next LM call would cross a budget (calls, tokens, cost or wall time)."""

    def __init__(self, message: str, *, kind: str, limit: float, spent: float) -> None:
        super().__init__(message)
        self.kind = kind
        self.limit = limit
        self.spent = spent


def describe(exc: BaseException) -> dict[str, Any]:
    """A JSON-safe summary of an exception, for error rows and reports."""
    return {"type": type(exc).__name__, "message": str(exc)}
