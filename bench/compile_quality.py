"""SST-2 on the embedded Gemma 3 270M: zero-shot vs LabeledFewShot, BootstrapFewShot and RandomSearch.

Reads ../shared/data/sst2/dev.tsv (or $LMPROG_SST2) when present — the data is never copied into the repo —
and cuts it with a fixed seed into train / val / test. Prints test accuracy with its 95% CI, LM calls and
wall time for each, then the paired comparison of each optimizer against zero-shot.

    python bench/compile_quality.py [--train 200 --val 60 --test 300 --candidates 8 --seed 0]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Literal

import lmprog as lp
from lmprog.optimizers import BootstrapFewShot, LabeledFewShot, RandomSearch


class Sentiment(lp.Signature):
    """Classify the sentiment of a movie review."""

    review: str = lp.InputField()
    label: Literal["positive", "negative"] = lp.OutputField()


def find_sst2() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    for p in (os.environ.get("LMPROG_SST2"), here.parent / "shared/data/sst2/dev.tsv",
              Path("/work/shared/data/sst2/dev.tsv")):
        if p and Path(p).exists():
            return Path(p)
    return None


def load(path: Path) -> lp.Dataset:
    with path.open(encoding="utf-8") as f:
        rows = [{"review": r["sentence"].strip(), "label": "positive" if r["label"] == "1" else "negative"}
                for r in csv.DictReader(f, delimiter="\t")]
    return lp.Dataset(rows, inputs=["review"], name="sst2-dev")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--val", type=int, default=60)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lm", default="local/gemma-3-270m")
    ap.add_argument("--only", default="", help="comma-separated subset: zero,labeled,bootstrap,random")
    args = ap.parse_args()

    path = find_sst2()
    if path is None:
        print("SST-2 not found (../shared/data/sst2/dev.tsv or $LMPROG_SST2); nothing to measure.")
        return 0
    data = load(path)
    n = args.train + args.val + args.test
    shuffled = data.sample(min(n, len(data)), seed=args.seed)
    train = shuffled[: args.train]
    val = shuffled[args.train : args.train + args.val]
    test = shuffled[args.train + args.val :]
    print(f"SST-2 dev from {path}: train {len(train)}, val {len(val)}, test {len(test)} (seed {args.seed}); "
          f"LM {args.lm}")

    lm = lp.LM(args.lm)
    metric = lp.metrics.exact_match
    program = lp.Predict(Sentiment, lm=lm)
    optimizers = {
        "labeled": lambda: LabeledFewShot(k=4, metric=metric, seed=args.seed),
        "bootstrap": lambda: BootstrapFewShot(metric, max_bootstrapped=4, max_labeled=4, seed=args.seed),
        "random": lambda: RandomSearch(metric, num_candidates=args.candidates, max_bootstrapped=4, max_labeled=4,
                                       seed=args.seed),
    }
    only = set(filter(None, args.only.split(","))) or {"zero", *optimizers}
    rows = []
    results: dict[str, lp.EvalResult] = {}
    if "zero" in only:
        t0 = time.perf_counter()
        with lp.track() as t:
            res = lp.evaluate(program, test, metric, progress=False)
        results["zero-shot"] = res
        rows.append(("zero-shot", res, t.totals.billed_calls, 0, time.perf_counter() - t0))
    for name, make in optimizers.items():
        if name not in only:
            continue
        t0 = time.perf_counter()
        with lp.track() as t:
            compiled = make().compile(program, train, val, progress=False)
            compile_calls = t.totals.billed_calls
            res = lp.evaluate(compiled, test, metric, progress=False)
        results[name] = res
        rows.append((name, res, t.totals.billed_calls, compile_calls, time.perf_counter() - t0))
        print(compiled.report, file=sys.stderr)

    print(f"\n{'method':<12}{'test acc':>9}{'95% CI':>17}{'errors':>8}{'LM calls':>10}{'(compile)':>10}{'wall s':>8}")
    for name, res, calls, ccalls, wall in rows:
        print(f"{name:<12}{res.score:>9.3f}   [{res.ci[0]:.3f}, {res.ci[1]:.3f}]{len(res.errors):>8}{calls:>10}"
              f"{ccalls:>10}{wall:>8.0f}")
    if "zero-shot" in results:
        for name, res in results.items():
            if name != "zero-shot":
                print(f"\n{name} vs zero-shot: {lp.compare(results['zero-shot'], res)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
