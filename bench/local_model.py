"""Embedded-model speed: 4-shot sentiment classification with a Literal label, lmprog vs raw llama-cpp-python.

Prints load time, examples/s for lmprog's LM (LocalBackend, cache off) and for a raw `Llama.create_completion`
loop over exactly the same prompts and grammar, their ratio (target >= 0.9), and the effect of prefix reuse
(per-example time with the shared 4-shot prefix reused vs. with the model state reset before every example).

    python bench/local_model.py [--n 40] [--rounds 2]

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
from pathlib import Path
from typing import Literal

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
    ap.add_argument("--rounds", type=int, default=2, help="alternating passes per side; the best is reported")
    args = ap.parse_args()
    os.environ.setdefault("LMPROG_CACHE_DIR", tempfile.mkdtemp(prefix="lmprog-bench-"))

    import llama_cpp

    from lmprog.adapters.gbnf import completion_grammar
    from lmprog.lm import LM, Constraint
    from lmprog.lm.local import gemma_path

    t0 = time.perf_counter()
    path = gemma_path()
    t_assemble = time.perf_counter() - t0
    lm = LM("local/gemma-3-270m", cache=False, temperature=0.0, max_tokens=8)
    t0 = time.perf_counter()
    model = lm.backend.loaded()
    t_load = time.perf_counter() - t0
    print(f"model file: {path} (assembly/check {t_assemble:.2f} s); load {t_load:.2f} s; "
          f"n_ctx={lm.backend.n_ctx} n_threads={lm.backend.n_threads}")

    grammar = completion_grammar([("Label", Literal["positive", "negative"])])
    prompts = [PREFIX + f"Review: {r}\nLabel:" for r in reviews(args.n)]
    raw = llama_cpp.Llama(str(path), n_ctx=lm.backend.n_ctx, n_threads=lm.backend.n_threads,
                          n_threads_batch=lm.backend.n_threads, seed=0, verbose=False, swa_full=True)
    raw_grammar = llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)
    constraint = Constraint(grammar=grammar)

    def lmprog_pass() -> tuple[float, list[str]]:
        t = time.perf_counter()
        out = [lm(prompt=p, constraint=constraint).text for p in prompts]
        return time.perf_counter() - t, out

    def raw_pass(reset: bool = False) -> tuple[float, list[str]]:
        t = time.perf_counter()
        out = []
        for p in prompts:
            if reset:
                raw.reset()
            out.append(raw.create_completion(p, max_tokens=8, temperature=0.0, seed=0, grammar=raw_grammar)
                       ["choices"][0]["text"])
        return time.perf_counter() - t, out

    lmprog_pass(), raw_pass()  # warm-up: page in weights, build caches
    ours, theirs = [], []
    for _ in range(args.rounds):
        t, ours_out = lmprog_pass()
        ours.append(t)
        t, raw_out = raw_pass()
        theirs.append(t)
    t_reset, _ = raw_pass(reset=True)
    n = len(prompts)
    ours_eps, raw_eps = n / min(ours), n / min(theirs)
    agree = sum(a == b for a, b in zip(ours_out, raw_out))
    labels = {t.strip() for t in ours_out}
    print(f"4-shot Literal classification, {n} examples, prompt ~{len(raw.tokenize(prompts[0].encode()))} tokens")
    print(f"  lmprog LM (LocalBackend, cache off): {ours_eps:6.2f} ex/s  ({1000 * min(ours) / n:.1f} ms/example)")
    print(f"  raw llama-cpp-python loop:           {raw_eps:6.2f} ex/s  ({1000 * min(theirs) / n:.1f} ms/example)")
    print(f"  ratio lmprog/raw: {ours_eps / raw_eps:.2f}  (target >= 0.90); same label on {agree}/{n}; "
          f"labels seen {sorted(labels)}")
    print("prefix reuse (raw loop):")
    print(f"  shared 4-shot prefix reused: {1000 * min(theirs) / n:.1f} ms/example")
    print(f"  state reset every example:   {1000 * t_reset / n:.1f} ms/example  "
          f"(reuse is {t_reset / min(theirs):.2f}x faster)")
    print(f"  lmprog grammars cached: {len(model.grammars)}; load time of the shared instance {model.load_seconds:.2f} s")
    print(f"  per-pass seconds lmprog {[round(x, 2) for x in ours]} raw {[round(x, 2) for x in theirs]}; "
          f"median lmprog {statistics.median(ours):.2f} raw {statistics.median(theirs):.2f}")


if __name__ == "__main__":
    main()
