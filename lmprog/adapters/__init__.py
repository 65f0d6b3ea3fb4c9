"""Adapters turn a signature, demos and inputs into a request, and the model's text back into typed fields."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Adapter
from .chat import ChatAdapter
from .completion import CompletionAdapter
from .json_adapter import JSONAdapter

if TYPE_CHECKING:
    from ..lm.base import LM

__all__ = ["Adapter", "ChatAdapter", "CompletionAdapter", "JSONAdapter", "adapter_for"]

_BY_NAME: dict[str, Adapter] = {"chat": ChatAdapter(), "json": JSONAdapter(), "completion": CompletionAdapter()}


def adapter_for(lm: LM) -> Adapter:
    """The adapter in force: the configured one, else the one the LM's backend prefers."""
    from ..settings import settings

    configured = settings().adapter
    if configured is not None:
        return configured
    return _BY_NAME.get(getattr(lm.backend, "default_adapter", "chat"), _BY_NAME["chat"])
