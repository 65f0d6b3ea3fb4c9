"""Framework overhead: µs per Predict / ChainOfThought call with an instant FunctionLM, and `import lmprog` cost.

    python bench/overhead.py                # all figures
    python bench/overhead.py --calls 5000 --repeats 7 --profile

The LM answers instantly with a fixed, well-formed text (cache off, no network), so the time per call is
lmprog's own work: input validation, prompt rendering, the LM wrapper (ledger, history), parsing, and the
Prediction. Import figures come from fresh interpreters. Targets and the DSPy 3.4.1 reference measured on the
same machine are printed next to the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_PREDICT_US = 100.0
TARGET_IMPORT_S = 0.15
DSPY = {"Predict": (303.0, 332.0), "ChainOfThought": (411.0, 462.0), "import_s": 0.63, "import_mb": 61.0}


def _setup(kind: str, adapter_name: str) -> tuple[Any, dict[str, Any]]:
    import lmprog as lp
    from lmprog.testing import FunctionLM

    class Sentiment(lp.Signature):
        """Classify the sentiment of a movie review."""

        review: str = lp.InputField()
        label: Literal["positive", "negative"] = lp.OutputField(desc="overall sentiment")

    adapter = {"chat": lp.ChatAdapter(), "json": lp.JSONAdapter(), "completion": lp.CompletionAdapter()}[adapter_name]
    cls = lp.Predict if kind == "Predict" else lp.ChainOfThought
    program = cls(Sentiment, adapter=adapter)
    values = {"reasoning": "It is full of praise.", "label": "positive"}
    answer = adapter.render_outputs(program.signature, {k: v for k, v in values.items()
                                                        if k in program.signature.output_fields})
    program.lm = FunctionLM(lambda messages, **params: answer, cache=False)
    inputs = {"review": "A delight from start to finish, with a warm cast and a clever script."}
    return program, inputs


def per_call_us(kind: str, adapter_name: str, calls: int, repeats: int) -> list[float]:
    """µs per call for each repeat of `calls` calls (after a warm-up)."""
    program, inputs = _setup(kind, adapter_name)
    for _ in range(200):
        assert program(**inputs).label == "positive"
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            program(**inputs)
        out.append((time.perf_counter() - t0) / calls * 1e6)
    return out


def profile(kind: str, adapter_name: str, calls: int, top: int = 15) -> str:
    program, inputs = _setup(kind, adapter_name)
    for _ in range(200):
        program(**inputs)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        program(**inputs)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def _fresh(code: str, extra: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *(extra or []), "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=True)


# Peak RSS from /proc (VmHWM belongs to the new process image; ru_maxrss would carry over the forking parent's).
_IMPORT_PROBE = (
    "import time\n"
    "def peak_kb():\n"
    "    try:\n"
    "        for line in open('/proc/self/status'):\n"
    "            if line.startswith('VmHWM:'):\n"
    "                return int(line.split()[1])\n"
    "    except OSError:\n"
    "        pass\n"
    "    import resource\n"
    "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "before = peak_kb()\n"
    "t0 = time.perf_counter()\n"
    "{stmt}\n"
    "dt = time.perf_counter() - t0\n"
    "print(dt, before, peak_kb())\n"
)


def import_figures(runs: int) -> dict[str, float]:
    """Median in-process import time, process wall time with and without the import, and peak RSS (MB)."""
    times, rss, rss_base, wall, wall_base = [], [], [], [], []
    for _ in range(runs):
        dt, before, after = _fresh(_IMPORT_PROBE.format(stmt="import lmprog")).stdout.split()
        times.append(float(dt))
        rss.append(int(after) / 1024)
        rss_base.append(int(before) / 1024)
        t0 = time.perf_counter()
        _fresh("import lmprog")
        wall.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _fresh("pass")
        wall_base.append(time.perf_counter() - t0)
    return {
        "import_s": statistics.median(times), "import_min_s": min(times), "import_max_s": max(times),
        "process_s": statistics.median(wall), "bare_process_s": statistics.median(wall_base),
        "peak_rss_mb": statistics.median(rss), "bare_rss_mb": statistics.median(rss_base),
    }


def importtime_rows() -> list[tuple[int, int, str]]:
    """(cumulative µs, self µs, module) of every import under `import lmprog`, from -X importtime."""
    err = _fresh("import lmprog", ["-X", "importtime"]).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|", 2)
        rows.append((int(cum_us), int(self_us), name.rstrip()))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="calls per repeat")
    ap.add_argument("--repeats", type=int, default=5, help="repeats per configuration (median reported)")
    ap.add_argument("--import-runs", type=int, default=7, help="fresh interpreters for the import figures")
    ap.add_argument("--profile", action="store_true", help="print the top 15 hot spots of Predict per adapter")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()

    os.environ.setdefault("LMPROG_ALLOW_NETWORK", "0")
    figures: dict[str, Any] = {"calls": args.calls, "repeats": args.repeats, "python": sys.version.split()[0]}

    print(f"Per-call framework overhead, instant FunctionLM, cache off ({args.calls} calls × {args.repeats} "
          "repeats, median [min–max])")
    print(f"{'module':<16}{'adapter':<12}{'µs/call':>10}{'range':>18}{'target':>10}{'DSPy 3.4.1':>14}{'DSPy/us':>9}")
    for kind in ("Predict", "ChainOfThought"):
        for adapter_name in ("chat", "json", "completion"):
            runs = per_call_us(kind, adapter_name, args.calls, args.repeats)
            med = statistics.median(runs)
            lo, hi = DSPY[kind]
            target = f"≤{TARGET_PREDICT_US:.0f}" if kind == "Predict" else "-"
            flag = " MISS" if kind == "Predict" and med > TARGET_PREDICT_US else ""
            print(f"{kind:<16}{adapter_name:<12}{med:>10.1f}{f'[{min(runs):.1f}–{max(runs):.1f}]':>18}"
                  f"{target:>10}{f'{lo:.0f}–{hi:.0f}':>14}{f'{lo / med:.1f}×':>9}{flag}")
            figures[f"{kind}/{adapter_name}_us"] = med

    imp = import_figures(args.import_runs)
    figures.update(imp)
    print(f"\n`import lmprog` in a fresh interpreter ({args.import_runs} runs, median)")
    print(f"  in-process import time   {imp['import_s']:.3f} s  [{imp['import_min_s']:.3f}–{imp['import_max_s']:.3f}]"
          f"   target ≤{TARGET_IMPORT_S} s{' MISS' if imp['import_s'] > TARGET_IMPORT_S else ''}"
          f"   DSPy {DSPY['import_s']} s ({DSPY['import_s'] / imp['import_s']:.1f}× ours)")
    print(f"  process wall time        {imp['process_s']:.3f} s  "
          f"(bare `python -c pass`: {imp['bare_process_s']:.3f} s)")
    print(f"  peak RSS after import    {imp['peak_rss_mb']:.1f} MB  (bare interpreter: {imp['bare_rss_mb']:.1f} MB;"
          f" DSPy {DSPY['import_mb']:.0f} MB)")
    rows = importtime_rows()
    print("\nSlowest imports under `import lmprog` (python -X importtime, one run), by cumulative time:")
    print(f"  {'cumulative µs':>14}{'self µs':>10}  module")
    for cum, self_us, name in sorted(rows, reverse=True)[:12]:
        print(f"  {cum:>14}{self_us:>10}  {name}")
    print("  ... and by own time:")
    for cum, self_us, name in sorted(rows, key=lambda r: r[1], reverse=True)[:12]:
        print(f"  {cum:>14}{self_us:>10}  {name.strip()}")

    if args.profile or any(figures[f"Predict/{a}_us"] > TARGET_PREDICT_US for a in ("chat", "json", "completion")):
        for adapter_name in ("chat", "json", "completion"):
            print(f"\ncProfile of Predict with {adapter_name}, {args.calls} calls, top 15 by own time:")
            print(profile("Predict", adapter_name, args.calls))

    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
