"""LM backends behind one interface: `LM` plus `make_backend`, which picks a backend from a model string.

    local/<name>, local:<path.gguf>      the embedded llama.cpp model (lmprog.lm.local)
    openai/<name> with api_base          the direct OpenAI-compatible HTTP path (transport="litellm" opts out)
    anything else litellm knows          litellm
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .base import LM, BackendResult, Constraint, LMRequest, LMResponse

__all__ = ["LM", "BackendResult", "Constraint", "LMRequest", "LMResponse", "make_backend"]

# Model prefixes whose endpoints speak the OpenAI HTTP API, so the direct path can serve them.
_OPENAI_COMPATIBLE = ("openai/", "hosted_vllm/")
_TRANSPORTS = ("http", "litellm")


def make_backend(model: str, defaults: dict[str, Any]) -> Any:
    """The backend for `model`. Options that shape the client (transport, rpm, tpm, max_connections) are
    taken out of `defaults` here, so they are neither sent to the provider nor part of the cache key."""
    if model.startswith(("local/", "local:")):
        from .local import LocalBackend

        return LocalBackend.from_model(model, defaults)

    from .ratelimit import RateLimiter

    transport = defaults.pop("transport", None)
    limiter = RateLimiter.from_options(defaults.pop("rpm", None), defaults.pop("tpm", None))
    max_connections = int(defaults.pop("max_connections", 256))
    if transport is not None and transport not in _TRANSPORTS:
        raise UsageError(f"transport must be one of {_TRANSPORTS} or unset, got {transport!r}")
    api_base = defaults.get("api_base") or defaults.get("base_url")
    compatible = model.startswith(_OPENAI_COMPATIBLE)
    if transport == "http" and not compatible:
        raise UsageError(f"transport='http' speaks the OpenAI API and serves only models named "
                         f"{' or '.join(p + '<name>' for p in _OPENAI_COMPATIBLE)}; got {model!r}")
    if transport == "http" or (transport is None and compatible and api_base):
        from .http_backend import HTTPBackend

        return HTTPBackend(model, api_base, limiter=limiter, max_connections=max_connections)

    from .litellm_backend import LiteLLMBackend

    return LiteLLMBackend(model, api_base=api_base, limiter=limiter)
