"""Providers through litellm: any litellm model string, with litellm's errors turned into lmprog errors.

litellm is imported on first use, told to read its bundled price table (no network at import) and to keep
quiet. It is called with retries off: LM.forward retries once, with the ledger seeing every attempt.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from typing import Any

from ..errors import LMError, ProviderError, TimeoutError
from .base import BackendResult, LMRequest
from .http_backend import is_loopback, not_json_error, request_chars, status_error
from .ratelimit import RateLimiter, estimate_tokens

# Ours, not litellm's: never forwarded as keyword arguments.
_OWN_OPTIONS = frozenset({"transport", "rpm", "tpm", "max_connections"})


# How providers (through litellm) say that no API key was given.
_MISSING_KEY = re.compile(r"missing (credentials|\w+ api key)|api_key client option must be set", re.I)


@functools.cache
def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMBackend:
    """Chat completions through `litellm.completion`; a `prompt=` request is sent as one user message."""

    default_adapter = "chat"
    supports_grammar = False

    def __init__(self, model: str, *, api_base: str | None = None, limiter: RateLimiter | None = None) -> None:
        self.model = model
        self.api_base = api_base
        self.is_network = not is_loopback(api_base)
        self.limiter = limiter
        self._unpriced = False

    def __repr__(self) -> str:
        return f"LiteLLMBackend({self.model!r})"

    @functools.cached_property
    def supports_json_schema(self) -> bool:
        """Whether litellm knows the model accepts `response_format` with a JSON schema."""
        try:
            return bool(_litellm().supports_response_schema(model=self.model))
        except Exception:  # unknown models raise inside litellm; then we do not claim support
            return False

    def _kwargs(self, request: LMRequest, timeout: float | None) -> dict[str, Any]:
        messages = request.messages if request.messages is not None else [
            {"role": "user", "content": request.prompt}]
        kwargs: dict[str, Any] = {k: v for k, v in request.params.items() if k not in _OWN_OPTIONS and v is not None}
        constraint = request.constraint
        if (constraint is not None and constraint.json_schema is not None and "response_format" not in kwargs
                and self.supports_json_schema):
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "output", "schema": constraint.json_schema}}
        kwargs.update(model=self.model, messages=messages, num_retries=0, max_retries=0, timeout=timeout)
        return kwargs

    def _estimate(self, request: LMRequest) -> int:
        if self.limiter is None or self.limiter.tpm is None:
            return 0
        return estimate_tokens(request_chars(request), request.params.get("max_tokens"))

    def complete(self, request: LMRequest, timeout: float | None) -> BackendResult:
        litellm = _litellm()
        estimate = self._estimate(request)
        if self.limiter is not None:
            self.limiter.acquire(estimate)
        with self._errors(timeout):
            resp = litellm.completion(**self._kwargs(request, timeout))
        return self._result(resp, estimate)

    async def acomplete(self, request: LMRequest, timeout: float | None) -> BackendResult:
        litellm = _litellm()
        estimate = self._estimate(request)
        if self.limiter is not None:
            await self.limiter.aacquire(estimate)
        with self._errors(timeout):
            resp = await litellm.acompletion(**self._kwargs(request, timeout))
        return self._result(resp, estimate)

    @contextlib.contextmanager
    def _errors(self, timeout: float | None) -> Iterator[None]:
        """Re-raise litellm's exceptions as lmprog errors (programming errors pass through unchanged)."""
        try:
            yield
        except Exception as exc:
            mapped = self._map(exc, timeout)
            if mapped is exc:
                raise
            raise mapped from exc

    def _result(self, resp: Any, estimate: int) -> BackendResult:
        try:
            texts = [c.message.content or "" for c in resp.choices]
        except AttributeError:
            raise not_json_error(self.model, str(resp)[:500], "litellm") from None
        used = getattr(resp, "usage", None)
        pt = int(getattr(used, "prompt_tokens", 0) or 0)
        ct = int(getattr(used, "completion_tokens", 0) or 0)
        if self.limiter is not None:
            self.limiter.settle(estimate, pt + ct)
        return BackendResult(texts=texts, prompt_tokens=pt, completion_tokens=ct, cost=self._cost(resp))

    def _cost(self, resp: Any) -> float | None:
        hidden = getattr(resp, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        if cost is not None:
            return float(cost)
        if self._unpriced:
            return None
        try:
            return float(_litellm().completion_cost(completion_response=resp))
        except Exception:  # a model missing from the price table: remember, the lookup costs ~0.5 ms a call
            self._unpriced = True
            return None

    def _map(self, exc: Exception, timeout: float | None) -> Exception:
        """The lmprog error for an exception from litellm; programming errors pass through unchanged."""
        import openai

        if isinstance(exc, LMError):
            return exc
        where = self.api_base or "the provider"
        if isinstance(exc, openai.APITimeoutError) or type(exc).__name__ == "Timeout":
            return TimeoutError(f"{self.model} did not answer within {timeout} s at {where}; "
                                "raise LM(timeout=...) or check the provider", model=self.model)
        message = str(exc)
        if "invalid response from LLM endpoint" in message or "Invalid response object" in message:
            body = message.split("Received:", 1)[-1].strip() if "Received:" in message else message
            return not_json_error(self.model, body.strip("'\" ."), where)
        status = getattr(exc, "status_code", None)
        if _MISSING_KEY.search(message):
            # litellm reports a missing key for some providers as a 500, which would be retried in vain.
            provider = self.model.split("/", 1)[0].upper() if "/" in self.model else "THE_PROVIDER"
            return ProviderError(f"{self.model}: no API key. Set it in the environment (e.g. {provider}_API_KEY) "
                                 f"or pass LM({self.model!r}, api_key=...). Provider said: "
                                 f"{message[:300]}", model=self.model, status_code=401, body=message)
        response = getattr(exc, "response", None)
        headers = getattr(exc, "litellm_response_headers", None) or getattr(response, "headers", None)
        if isinstance(exc, openai.APIConnectionError):
            return ProviderError(f"could not reach {self.model} at {where}: {message}; "
                                 "check api_base and that the server is running", model=self.model)
        if isinstance(status, int) and status >= 400:
            return status_error(self.model, status, message, headers, where)
        if isinstance(exc, openai.OpenAIError):
            return ProviderError(f"{self.model} call failed at {where}: {message}", model=self.model)
        return exc

