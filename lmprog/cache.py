"""The LM cache: a bounded in-memory LRU in front of a diskcache directory shared by threads and processes.

The key is the sha256 of the canonical JSON (sorted keys, compact) of everything that determines an answer
— model, messages or prompt, every sampling parameter, api_base, constraint, rollout id — with secrets
removed by `redact()`, so an api key never reaches the disk and changing keys keeps cache hits. Values are
JSON text (texts and token counts); pickle is refused on read as well as never written. A cache that cannot
be opened or read (corrupt, locked, unwritable) costs a warning, once, and calls go on without the disk.

Directory: `LMPROG_CACHE_DIR`, else `$XDG_CACHE_HOME/lmprog`, else `~/.cache/lmprog`.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .lm.base import BackendResult, LMRequest

MEMORY_ENTRIES = 10_000

# Parameter names that contain a secret-looking word but are sampling parameters.
_NOT_SECRET = frozenset({"max_tokens", "max_completion_tokens", "max_new_tokens", "min_tokens", "top_k",
                         "logit_bias", "response_format"})
_SECRET_WORDS = ("key", "secret", "password", "passwd", "authorization", "credential", "cookie", "signature")
# Content, not configuration: kept whole even when a field inside is named like a secret ("key_points").
_NOT_REDACTED = frozenset({"model", "messages", "prompt", "constraint", "rollout_id", "response_format", "tools",
                           "tool_choice", "functions", "logit_bias", "stop"})


def is_secret(name: str) -> bool:
    """Whether a parameter or header name holds a credential (api_key, Authorization, x-goog-token, ...)."""
    n = name.lower()
    if n in _NOT_SECRET:
        return False
    if any(w in n for w in _SECRET_WORDS):
        return True
    return "token" in n and not n.endswith("tokens")  # "max_tokens" counts tokens; "access_token" is one


def _clean_url(url: str) -> str:
    """A URL without user:password and without secret-looking query parameters (`?key=...`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_secret(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(data: Any, _key: str = "") -> Any:
    """A copy of `data` without secrets: secret-named entries are dropped and URLs lose their credentials."""
    if isinstance(data, dict):
        return {k: (v if k in _NOT_REDACTED else redact(v, str(k))) for k, v in data.items()
                if not is_secret(str(k))}
    if isinstance(data, (list, tuple)):
        return [redact(v, _key) for v in data]
    if isinstance(data, str) and "://" in data and _key.lower() in ("api_base", "base_url", "url", "endpoint"):
        return _clean_url(data)
    return data


def _jsonable(obj: Any) -> Any:
    """How values json cannot encode enter the key: pydantic classes by schema, sets sorted, others by repr."""
    schema = getattr(obj, "model_json_schema", None)
    if callable(schema):
        try:
            return {"__schema__": schema()}
        except Exception:  # a pydantic instance or a class that cannot render: fall back to repr
            pass
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    return repr(obj)


# How a call travels, not what it asks: never part of the key (api_base is, since it names the model's host).
_TRANSPORT_OPTIONS = frozenset({"transport", "rpm", "tpm", "max_connections", "timeout", "num_retries",
                                "max_retries"})


def request_key(request: LMRequest) -> str:
    """The cache key of a request: sha256 of its redacted key material as canonical JSON."""
    material = redact(request.key_material())
    params = material.get("params")
    if isinstance(params, dict) and not _TRANSPORT_OPTIONS.isdisjoint(params):
        material["params"] = {k: v for k, v in params.items() if k not in _TRANSPORT_OPTIONS}
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _encode(result: BackendResult) -> str:
    return json.dumps({"texts": list(result.texts), "prompt_tokens": result.prompt_tokens,
                       "completion_tokens": result.completion_tokens}, ensure_ascii=False)


def _decode(text: str) -> BackendResult:
    d = json.loads(text)
    texts = d["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("cache entry texts are not a list of strings")
    return BackendResult(texts=texts, prompt_tokens=int(d.get("prompt_tokens", 0)),
                         completion_tokens=int(d.get("completion_tokens", 0)), cost=0.0)


def _text_disk() -> type:
    """A diskcache Disk that stores only text and refuses to unpickle anything found in the database."""
    import diskcache

    class TextDisk(diskcache.Disk):
        def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
            if not isinstance(value, str):
                raise TypeError("the lmprog cache stores JSON text only")
            return super().store(value, read, key=key)

        def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
            if mode == diskcache.core.MODE_PICKLE:
                raise ValueError("refusing to unpickle a cache entry (lmprog never writes pickle)")
            return super().fetch(mode, filename, value, read)

        def get(self, key: Any, raw: bool) -> Any:
            if not raw:
                raise ValueError("refusing to unpickle a cache key (lmprog never writes pickle)")
            return super().get(key, raw)

    return TextDisk


class Cache:
    """Memory LRU + diskcache at `directory`; `get(request)` / `put(request, result)` never raise for I/O."""

    def __init__(self, directory: str, memory_entries: int = MEMORY_ENTRIES) -> None:
        self.directory = directory
        self.memory_entries = memory_entries
        self.hits = 0
        self.misses = 0
        self.memory_hits = 0
        self.disk_hits = 0
        self._memory: collections.OrderedDict[str, BackendResult] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._disk: Any = None
        self._disk_failed = False
        self._warned: set[str] = set()

    # -- disk ----------------------------------------------------------------------------------------------
    def _warn(self, kind: str, message: str) -> None:
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        warnings.warn(message, RuntimeWarning, stacklevel=4)

    def _open(self) -> Any:
        if self._disk is not None or self._disk_failed:
            return self._disk
        with self._lock:
            if self._disk is not None or self._disk_failed:
                return self._disk
            try:
                self._disk = self._connect()
            except sqlite3.DatabaseError as exc:
                text = str(exc).lower()
                if "not a database" in text or "malformed" in text or "corrupt" in text:
                    self._rebuild(exc)
                else:  # locked, unreadable, unwritable: nothing to repair from here
                    self._give_up(f"the LM cache at {self.directory} cannot be used ({exc})")
            except Exception as exc:  # unwritable directory, a file in its place, a timeout
                self._give_up(f"the LM cache at {self.directory} cannot be used ({type(exc).__name__}: {exc})")
        return self._disk

    def _connect(self) -> Any:
        import diskcache

        disk = diskcache.Cache(self.directory, disk=_text_disk(), timeout=5, size_limit=2**32,
                               eviction_policy="least-recently-stored")
        disk.get("__probe__")  # a corrupt database fails here rather than on the first real call
        return disk

    def _rebuild(self, exc: Exception) -> None:
        """Move a corrupt database aside and start an empty one; the old file is kept for inspection."""
        db = os.path.join(self.directory, "cache.db")
        aside = f"{db}.corrupt-{int(time.time())}"
        try:
            os.replace(db, aside)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
            self._disk = self._connect()
        except Exception as again:  # still unusable: go on with memory only
            self._give_up(f"the LM cache at {self.directory} is corrupt ({exc}) and could not be rebuilt "
                          f"({type(again).__name__}: {again})")
            return
        warnings.warn(f"the LM cache at {self.directory} was corrupt ({exc}); it was moved to {aside} and "
                      "a new empty cache started", RuntimeWarning, stacklevel=5)

    def _give_up(self, reason: str) -> None:
        self._disk_failed = True
        self._disk = None
        self._warned.add("open")
        warnings.warn(f"{reason}; LM calls continue without the disk cache (set LMPROG_CACHE_DIR to a "
                      "writable directory to fix)", RuntimeWarning, stacklevel=5)

    # -- the interface LM uses --------------------------------------------------------------------------
    def get(self, request: LMRequest) -> BackendResult | None:
        key = request_key(request)
        with self._lock:
            found = self._memory.get(key)
            if found is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                self.memory_hits += 1
                return _copy(found)
        disk = self._open()
        if disk is not None:
            try:
                text = disk.get(key)
                found = _decode(text) if text is not None else None
            except Exception as exc:  # corrupt, locked or foreign entries must never fail the LM call
                self._warn("read", f"reading the LM cache at {self.directory} failed ({type(exc).__name__}: "
                                   f"{exc}); the call goes on uncached")
                found = None
            if found is not None:
                self._remember(key, found)
                with self._lock:
                    self.hits += 1
                    self.disk_hits += 1
                return _copy(found)
        with self._lock:
            self.misses += 1
        return None

    def put(self, request: LMRequest, result: BackendResult) -> None:
        key = request_key(request)
        stored = BackendResult(texts=list(result.texts), prompt_tokens=result.prompt_tokens,
                               completion_tokens=result.completion_tokens, cost=0.0)
        self._remember(key, stored)
        disk = self._open()
        if disk is None:
            return
        try:
            disk.set(key, _encode(stored))
        except Exception as exc:  # a locked or full disk must never fail the LM call
            self._warn("write", f"writing the LM cache at {self.directory} failed ({type(exc).__name__}: {exc}); "
                                "calls go on without storing their answers")

    def _remember(self, key: str, result: BackendResult) -> None:
        with self._lock:
            self._memory[key] = result
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_entries:
                self._memory.popitem(last=False)

    # -- management -------------------------------------------------------------------------------------
    def clear_memory(self) -> None:
        """Drop the in-memory layer (the disk stays); the next hits come from disk."""
        with self._lock:
            self._memory.clear()

    def clear(self) -> None:
        """Remove every entry, in memory and on disk."""
        self.clear_memory()
        disk = self._open()
        if disk is not None:
            disk.clear()

    def disk_bytes(self) -> int:
        """Bytes the cache directory holds on disk (database, write-ahead log and value files)."""
        total = 0
        for root, _, files in os.walk(self.directory):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
        return total

    def stats(self) -> dict[str, Any]:
        """Hits (memory and disk), misses, entries in memory and bytes on disk."""
        with self._lock:
            out: dict[str, Any] = {"hits": self.hits, "misses": self.misses, "memory_hits": self.memory_hits,
                   "disk_hits": self.disk_hits, "memory_entries": len(self._memory)}
        out["disk_bytes"] = self.disk_bytes()
        out["directory"] = self.directory
        return out

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


def _copy(r: BackendResult) -> BackendResult:
    return BackendResult(texts=list(r.texts), prompt_tokens=r.prompt_tokens,
                         completion_tokens=r.completion_tokens, cost=0.0)


def cache_dir() -> str:
    """The cache directory in force: `LMPROG_CACHE_DIR`, else `$XDG_CACHE_HOME/lmprog`, else `~/.cache/lmprog`."""
    env = os.environ.get("LMPROG_CACHE_DIR")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lmprog")


_caches: dict[tuple[int, str], Cache] = {}
_caches_lock = threading.Lock()


def get_cache() -> Cache:
    """The process-wide cache for the current directory (re-read each call, so tests can point it elsewhere)."""
    key = (os.getpid(), cache_dir())  # a forked child opens its own sqlite connections
    found = _caches.get(key)
    if found is None:
        with _caches_lock:
            found = _caches.get(key)
            if found is None:
                found = _caches[key] = Cache(key[1])
    return found
