"""Embedded-model speed: 4-shot sentiment classification with a Literal label, lmprog vs raw llama-cpp-python.

Every line is milliseconds per example over the same prompts (greedy, max_tokens=8), best and median of the
alternating passes:

- lmprog lazy grammar: LM over LocalBackend (cache off), our decode loop checking the grammar lazily (default).
- lmprog full grammar: the same with LocalBackend(lazy_grammar=False): create_completion with llama.cpp's grammar
  sampler over all 262k candidates at every token.
- lmprog no grammar:   the same prompts with no constraint and stop="\n" (the label's own length).
- raw full grammar:    a plain `Llama.create_completion(prompt, grammar=...)` loop on its own Llama instance.
- raw no grammar:      the same loop without grammar, stop="\n".

Ratios are examples/s lmprog / raw (>1 means lmprog is faster), and the labels both constrained lmprog paths
and the raw loop chose are compared. Then the effect of prefix reuse (raw loop, state reset before each example).

    python bench/local_model.py [--n 40] [--rounds 3]

Reviews come from /work/shared/data/sst2/dev.tsv when present (read at run time, never copied into the repo),
else from the short sentences below.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

OWN_REVIEWS = [
    "A joyful, clever film that never talks down to its audience.", "Two hours I will never get back.",
    "The performances are luminous and the score is gorgeous.", "Flat characters stuck in a lifeless plot.",
    "Funny, warm and surprisingly moving.", "The jokes land with a thud, one after another.",
    "A gripping thriller with a twist I did not see coming.", "Messy, loud and instantly forgettable.",
    "Beautifully shot and tenderly acted.", "The script feels like a first draft.",
    "I laughed, I cried, I want to see it again.", "Even the cast looks bored.",
    "A small miracle of a movie.", "Tedious from the opening scene to the credits.",
    "Sharp writing and a terrific lead performance.", "An incoherent mess with nothing to say.",
    "Charming, light and utterly delightful.", "The pacing is glacial and the ending falls flat.",
    "One of the best films of the year.", "A dull retread of better movies.",
]
DEMOS = [
    ("A delight from start to finish, warm and funny.", "positive"),
    ("Dull, plodding and far too long.", "negative"),
    ("The cast is superb and the story never drags.", "positive"),
    ("I walked out halfway; a complete mess.", "negative"),
]
PREFIX = "Classify the sentiment of a movie review.\n\n---\n\n" + "".join(
    f"Review: {r}\nLabel: {label}\n\n---\n\n" for r, label in DEMOS)


def reviews(n: int) -> list[str]:
    path = Path("/work/shared/data/sst2/dev.tsv")
    texts = OWN_REVIEWS
    if path.exists():
        with path.open(newline="") as f:
            texts = [row["sentence"].strip() for row in csv.DictReader(f, delimiter="\t")]
    return (texts * (n // len(texts) + 1))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="examples per pass")
    ap.add_argument("--rounds", type=int, default=3, help="alternating passes per line")
    args = ap.parse_args()
    os.environ.setdefault("LMPROG_CACHE_DIR", tempfile.mkdtemp(prefix="lmprog-bench-"))

    import llama_cpp

    from lmprog.adapters.gbnf import completion_grammar
    from lmprog.lm import LM, Constraint
    from lmprog.lm.local import GEMMA_MODEL, LocalBackend, gemma_path

    t0 = time.perf_counter()
    path = gemma_path()
    t_assemble = time.perf_counter() - t0
    lazy = LM(GEMMA_MODEL, cache=False, temperature=0.0, max_tokens=8)
    full = LM(GEMMA_MODEL, backend=LocalBackend(path, model=GEMMA_MODEL, lazy_grammar=False), cache=False,
              temperature=0.0, max_tokens=8)
    t0 = time.perf_counter()
    model = lazy.backend.loaded()
    t_load = time.perf_counter() - t0
    print(f"model file: {path} (assembly/check {t_assemble:.2f} s); load {t_load:.2f} s; "
          f"n_ctx={lazy.backend.n_ctx} n_threads={lazy.backend.n_threads}; load average {os.getloadavg()}")

    grammar = completion_grammar([("Label", Literal["positive", "negative"])])
    prompts = [PREFIX + f"Review: {r}\nLabel:" for r in reviews(args.n)]
    raw = llama_cpp.Llama(str(path), n_ctx=lazy.backend.n_ctx, n_threads=lazy.backend.n_threads,
                          n_threads_batch=lazy.backend.n_threads, seed=0, verbose=False, swa_full=True)
    raw_grammar = llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)
    constraint = Constraint(grammar=grammar)

    def lmprog_pass(lm: LM, constrained: bool = True) -> list[str]:
        if constrained:
            return [lm(prompt=p, constraint=constraint).text for p in prompts]
        return [lm(prompt=p, stop=["\n"]).text for p in prompts]

    def raw_pass(constrained: bool = True, reset: bool = False) -> list[str]:
        out = []
        for p in prompts:
            if reset:
                raw.reset()
            extra: dict[str, Any] = {"grammar": raw_grammar} if constrained else {"stop": ["\n"]}
            out.append(raw.create_completion(p, max_tokens=8, temperature=0.0, seed=0, **extra)["choices"][0]["text"])
        return out

    lines: dict[str, Callable[[], list[str]]] = {
        "lmprog lazy grammar": lambda: lmprog_pass(lazy),
        "lmprog full grammar": lambda: lmprog_pass(full),
        "raw full grammar": raw_pass,
        "lmprog no grammar": lambda: lmprog_pass(lazy, constrained=False),
        "raw no grammar": lambda: raw_pass(constrained=False),
    }
    for run in lines.values():  # warm-up: page in weights, build caches
        run()
    seconds: dict[str, list[float]] = {name: [] for name in lines}
    outputs: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for name, run in lines.items():
            t = time.perf_counter()
            outputs[name] = run()
            seconds[name].append(time.perf_counter() - t)
    t = time.perf_counter()
    raw_pass(reset=True)
    t_reset = time.perf_counter() - t
    n = len(prompts)

    def ms(name: str, pick: Callable[[list[float]], float] = statistics.median) -> float:
        return 1000 * pick(seconds[name]) / n

    print(f"4-shot Literal classification, {n} examples, prompt ~{len(raw.tokenize(prompts[0].encode()))} tokens, "
          f"{args.rounds} passes per line; ms/example median (best)")
    for name in lines:
        print(f"  {name:20s} {ms(name):7.1f}  ({ms(name, min):.1f})")
    print("ratios of examples/s (medians):")
    for a, b in (("lmprog lazy grammar", "raw full grammar"), ("lmprog full grammar", "raw full grammar"),
                 ("lmprog lazy grammar", "lmprog full grammar"), ("lmprog no grammar", "raw no grammar"),
                 ("lmprog lazy grammar", "lmprog no grammar")):
        print(f"  {a} / {b}: {ms(b) / ms(a):.2f}")
    same = sum(a == b == c for a, b, c in zip(outputs["lmprog lazy grammar"], outputs["lmprog full grammar"],
                                              outputs["raw full grammar"], strict=True))
    labels = {t.strip() for t in outputs["lmprog lazy grammar"]}
    print(f"  same label from lazy, full and raw on {same}/{n}; labels seen {sorted(labels)}")
    print(f"prefix reuse (raw full-grammar loop): reused {ms('raw full grammar'):.1f} ms/example, state reset every "
          f"example {1000 * t_reset / n:.1f} ms/example ({t_reset / n / (ms('raw full grammar') / 1000):.2f}x)")
    print(f"lmprog grammars cached: {len(model.grammars)}; load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
