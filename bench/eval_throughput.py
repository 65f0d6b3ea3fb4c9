"""Throughput of `lp.evaluate` at 64 threads against a loopback server with 200 ms latency (issue 4).

    python bench/eval_throughput.py            # 1280 calls per figure (~4 s each at the ideal rate)
    python bench/eval_throughput.py --quick    # 320 calls per figure

Ideal: 64 in flight / 0.2 s = 320 calls/s. Printed side by side, each as a fraction of the ideal:
  (a) the LM layer alone: raw `LM` calls from a 64-thread pool (the LM layer's own figure, as in
      bench/lm_overhead.py),
  (b) `evaluate` of a thin program that makes one LM call per example (evaluate's own overhead: pool,
      context copies, rows, progress bookkeeping, metric),
  (c) `evaluate` of a real `Predict` (adds the chat adapter's rendering and parsing).
The server runs in a child process so its CPU does not compete with the client for the GIL.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("LMPROG_CACHE_DIR", tempfile.mkdtemp(prefix="lmprog-bench-cache-"))

import lmprog as lp  # noqa: E402
from lmprog import metrics  # noqa: E402
from lmprog._loopback import serve_in_subprocess  # noqa: E402
from lmprog.evaluate import evaluate  # noqa: E402
from lmprog.lm import LM  # noqa: E402

MODEL = "openai/bench-model"
ANSWER = "[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]"  # the chat adapter's format for answer="ok"


def row(name: str, rate: float, ideal: float, note: str = "") -> None:
    print(f"  {name:<44} {rate:7.0f} calls/s   {rate / ideal:5.0%} of ideal   {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    n = 320 if args.quick else 1280
    threads, latency = args.threads, args.latency
    ideal = threads / latency
    data = [lp.Example(question=f"Review {i}: a delight from start to finish.", answer="ok").with_inputs("question")
            for i in range(n)]

    with serve_in_subprocess(delay=latency, answer=ANSWER) as url:
        lm = LM(MODEL, api_base=url, api_key="sk-bench", cache=False)
        print(f"evaluate throughput: {threads} threads, {latency * 1e3:.0f} ms server latency, {n} calls per row "
              f"(ideal {ideal:.0f} calls/s)")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda i: lm(messages=[{"role": "user", "content": f"warm {i}"}]), range(threads)))
            t0 = time.perf_counter()
            list(pool.map(lambda ex: lm(messages=[{"role": "user", "content": ex.question}]), data))
            raw = n / (time.perf_counter() - t0)
        row("(a) LM layer: raw LM calls, 64-thread pool", raw, ideal, "baseline")

        def thin(question: str) -> lp.Prediction:
            resp = lm(messages=[{"role": "user", "content": question}])
            pred = lp.Prediction(answer="ok" if "ok" in resp.text else resp.text)
            pred.usage = list(resp.records)
            return pred

        t0 = time.perf_counter()
        r = evaluate(thin, data, metrics.exact_match, threads=threads, progress=False)
        thin_rate = n / (time.perf_counter() - t0)
        assert r.score == 1.0 and not r.errors, r.summary()
        row("(b) evaluate, one LM call per example", thin_rate, ideal, f"{thin_rate / raw:.0%} of (a)")

        program = lp.Predict("question -> answer")
        with lp.context(lm=lm):
            t0 = time.perf_counter()
            r = evaluate(program, data, metrics.exact_match, threads=threads, progress=False)
            full_rate = n / (time.perf_counter() - t0)
        assert not r.errors, r.errors[0].error_info
        row("(c) evaluate, Predict + chat adapter", full_rate, ideal,
            f"{full_rate / raw:.0%} of (a); score {r.score:.0%}")


if __name__ == "__main__":
    main()
