"""Grammar-constrained decoding that checks the model's own choice first (as llama.cpp's `common_sampler` does).

llama.cpp's grammar sampler costs ~20-30 ms per token when applied to all of Gemma's 262k-token vocabulary,
while checking one token is nearly free. The loop here takes the model's choice from the unconstrained logits
and asks the grammar about that token alone; only when it is rejected does it check the best-scoring candidates
in growing groups (the whole vocabulary last). Greedy output is the same text as with the grammar applied to
every candidate; tests compare the two paths.
"""

from __future__ import annotations

import time
from typing import Any

# Candidates checked against the grammar, best-scoring first, when it rejects the model's choice; the whole
# vocabulary comes after these. The first group finds an end-of-generation token ranked ~100th (a finished
# label) without paying for all 262k tokens.
GRAMMAR_GROUPS = (256, 8192)
# llama-cpp-python's create_completion defaults, kept for the lazy path so that both sample alike.
SAMPLING_DEFAULTS = {"top_k": 40, "top_p": 0.95, "min_p": 0.05}


class _LazyGrammar:
    """One generation's grammar state, checking the model's choice first and further candidates only if needed."""

    def __init__(self, template: Any) -> None:
        import llama_cpp
        import numpy as np

        self._llama, self._np = llama_cpp, np
        # A clone copies the parsed rules with a fresh parse state: no re-parsing per generation.
        self._smpl = llama_cpp.llama_sampler_clone(template)

    def close(self) -> None:
        self._llama.llama_sampler_free(self._smpl)

    def accept(self, token: int) -> None:
        self._llama.llama_sampler_accept(self._smpl, token)

    def allows(self, token: int) -> bool:
        return len(self._filter(self._np.array([token]), self._np.zeros(1))) == 1

    def best_allowed(self, logits: Any, need: int, min_p: float = 0.0) -> tuple[Any, Any]:
        """(ids, logits) of the allowed tokens among the best-scoring candidates, in id order.

        Candidates are checked in groups of all tokens scoring at least the k-th best logit (ties included), so
        the allowed ones found are exactly the best allowed of the whole vocabulary. The search widens until it
        has `need` of them, or every token left scores so far below the best allowed one that a min-p cut would
        drop it, or it has checked every token.
        """
        np = self._np
        n = len(logits)
        for k in (*GRAMMAR_GROUPS, n):
            floor = np.partition(logits, n - k)[n - k] if k < n else -np.inf
            ids = np.flatnonzero(logits >= floor)
            ok_ids = self._filter(ids, logits[ids])
            if len(ok_ids) >= need or (min_p > 0 and len(ok_ids) and floor < logits[ok_ids].max() + np.log(min_p)):
                break
        return ok_ids, logits[ok_ids]

    def _filter(self, ids: Any, logits: Any) -> Any:
        """The ids the grammar allows next (llama.cpp sets the logit of every other candidate to -inf)."""
        cands, _ = _apply(self._smpl, ids, logits)
        return cands["id"][self._np.isfinite(cands["logit"])]


def _apply(smpl: Any, ids: Any, logits: Any) -> tuple[Any, Any]:
    """Run a llama.cpp sampler over these candidates: (their numpy buffer, the `llama_token_data_array` it saw).

    The buffer is laid out as `llama_token_data` (id, logit, p); keep it while reading the array, which points
    into it (or, after some samplers, into the sampler's own buffer).
    """
    import ctypes

    import llama_cpp
    import numpy as np

    cands = np.zeros(len(ids), dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)]))
    cands["id"], cands["logit"] = ids, logits
    arr = llama_cpp.llama_token_data_array(data=cands.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
                                           size=len(cands), selected=-1, sorted=False)
    llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
    return cands, arr


def _sampler_chain(seed: int, kwargs: dict[str, Any]) -> Any:
    """top-k, top-p, min-p, temperature and a seeded draw: llama-cpp-python's chain, minus the grammar."""
    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    for smpl in (llama_cpp.llama_sampler_init_top_k(kwargs["top_k"]),
                 llama_cpp.llama_sampler_init_top_p(kwargs["top_p"], 1),
                 llama_cpp.llama_sampler_init_min_p(kwargs["min_p"], 1),
                 llama_cpp.llama_sampler_init_temp(kwargs["temperature"]),
                 llama_cpp.llama_sampler_init_dist(seed)):
        llama_cpp.llama_sampler_chain_add(chain, smpl)
    return chain


def _draw(chain: Any, ids: Any, logits: Any) -> int | None:
    """The token the sampler chain picks among these candidates (None if there are none)."""
    if len(ids) == 0:
        return None
    _cands, arr = _apply(chain, ids, logits)
    return int(arr.data[arr.selected].id)


def decode_lazily(llm: Any, tokens: list[int], grammar: Any, seed: int, deadline: float | None,
                   kwargs: dict[str, Any]) -> tuple[str, int]:
    """(text, completion tokens) of one grammar-constrained generation; the KV cache holds the prompt
    up to its last aligned block (see local.py).

    Each step takes the model's choice (argmax, or a draw of the sampler chain) from the unconstrained logits
    and asks the grammar about that token alone; only a rejected choice makes it look further (`best_allowed`),
    and sampling then draws again among the allowed candidates. Ends at an end-of-generation token (the only
    one a finished grammar allows), a stop sequence, max_tokens or the deadline.
    """
    import llama_cpp
    import numpy as np

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    greedy = kwargs["temperature"] <= 0
    need = 1 if greedy or kwargs["top_k"] <= 0 else kwargs["top_k"]
    max_tokens = kwargs["max_tokens"] if kwargs["max_tokens"] > 0 else llm.n_ctx()
    max_tokens = min(max_tokens, llm.n_ctx() - len(tokens))
    stops = [s.encode("utf-8") for s in kwargs["stop"] if s]
    state = _LazyGrammar(grammar)
    chain = None if greedy else _sampler_chain(seed, kwargs)
    all_ids = np.arange(n_vocab, dtype=np.int32)
    out = b""
    produced = 0
    try:
        llm.eval(tokens[llm.n_tokens:])  # the last (partial) block, in one batch as a fresh evaluation would
        while produced < max_tokens:
            if deadline is not None and time.monotonic() > deadline:
                break
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            token = int(np.argmax(logits)) if greedy else _draw(chain, all_ids, logits)
            if token is None or not state.allows(token):
                ids, scores = state.best_allowed(logits, need, 0.0 if greedy else kwargs["min_p"])
                token = (None if len(ids) == 0 else int(ids[np.argmax(scores)])) if greedy \
                    else _draw(chain, ids, scores)
            if token is None or llama_cpp.llama_vocab_is_eog(vocab, token):
                break  # None: the grammar allows nothing more, so what was written is all there is
            state.accept(token)
            produced += 1
            out += _piece(vocab, token)
            hits = [i for i in (out.find(s) for s in stops) if i >= 0]
            if hits:
                out = out[:min(hits)]
                break
            if produced < max_tokens:
                llm.eval([token])
    finally:
        state.close()
        if chain is not None:
            llama_cpp.llama_sampler_free(chain)
    # Byte-level tokens may split a character; decoding the whole byte string at once joins them again.
    return out.decode("utf-8", errors="ignore"), produced


def _piece(vocab: Any, token: int) -> bytes:
    """The bytes of one token (special tokens render as nothing, as in create_completion)."""
    import ctypes

    import llama_cpp

    buf = ctypes.create_string_buffer(64)
    size = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
    if size < 0:  # longer than the buffer: llama.cpp says how long
        buf = ctypes.create_string_buffer(-size)
        size = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
    return buf.raw[:size]
