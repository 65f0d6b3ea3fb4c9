"""The `lmprog` command: compile, evaluate, run and inspect programs from a shell, and the quickstart.

    lmprog compile myprog:classify --data reviews.jsonl --inputs review --metric exact_match \\
        --optimizer random_search --out compiled.json
    lmprog evaluate myprog:classify --data test.jsonl --inputs review --metric exact_match --load compiled.json
    lmprog run myprog:classify --load compiled.json --input review="A delight."
    lmprog inspect compiled.json
    lmprog quickstart

PROGRAM is `module:attribute` (or `path/to/file.py:attribute`), imported with the current directory on
sys.path; the attribute is a Module instance, a Module subclass (instantiated with no arguments) or a
function of no arguments returning a Module. A mistake in the arguments prints one line saying what to fix
and exits with status 2; a failure while the program runs exits with status 1.

Heavy modules (optimizers, evaluation, LM backends) are imported by the subcommand that needs them, so
`lmprog --help` starts instantly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ._cli_resolve import (
    METRIC_NAMES,
    input_names,
    lm_names,
    load_data,
    load_metric,
    load_program,
    load_state,
    parse_assignments,
    parse_inputs,
    use_lm,
)
from .errors import LMProgError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes are one line on stderr (through `main`), not usage plus a message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# -- subcommands ----------------------------------------------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    from .optimizers import get_optimizer

    inputs = parse_inputs(args.inputs)
    program = load_program(args.program)
    metric = load_metric(args.metric)
    trainset = load_data(args.data, inputs)
    valset = load_data(args.valset, inputs, "--valset") if args.valset else None
    options = parse_assignments(args.opt, "--opt")
    if args.seed is not None:
        options["seed"] = args.seed
    optimizer = get_optimizer(args.optimizer, metric=metric, **options)
    lm_name = use_lm(args.lm)
    budget = {"max_calls": args.max_calls} if args.max_calls is not None else None
    run_dir = Path(args.run_dir) if args.run_dir else Path(args.out).with_suffix(".run")
    compiled = optimizer.compile(program, trainset=trainset, valset=valset, budget=budget, progress=True,
                                 run_dir=run_dir)
    provenance = dict(getattr(compiled, "provenance", None) or {})
    if not provenance.get("lm") or str(provenance["lm"]).startswith("default"):
        provenance["lm"] = lm_names(program, lm_name)
    provenance.update(program=args.program, data_file=args.data, metric=getattr(metric, "__name__", str(metric)))
    provenance.setdefault("optimizer", type(optimizer).__name__)
    out = compiled.save(args.out, provenance=provenance)
    report = getattr(compiled, "report", None)
    if report is not None:
        if not sys.stderr.isatty():  # the table and the choice went to stderr; keep the choice with the output
            print(f"chosen: {report.reason}")
        report_path = Path(args.report) if args.report else out.with_name(out.stem + ".report.json")
        report.save(report_path)
        print(f"saved the compile report to {report_path}")
    print(f"saved the compiled program to {out}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    inputs = parse_inputs(args.inputs)
    program = load_state(load_program(args.program), args.load)
    metric = load_metric(args.metric)
    data = load_data(args.data, inputs)
    if args.report and Path(args.report).suffix.lower() not in (".json", ".csv"):
        raise UsageError(f"--report {args.report!r}: use a .json or .csv file name")
    use_lm(args.lm)
    result = evaluate(program, data, metric, threads=args.threads, progress=True)
    print(result.summary())
    for row in result.errors[:5]:
        info = row.error_info or {}
        print(f"  row {row.index}: {info.get('type')}: {_one_line(str(info.get('message')))}")
    if len(result.errors) > 5:
        print(f"  ... {len(result.errors) - 5} more errors (see the report)")
    if args.report:
        print(f"saved the report to {result.save(args.report)}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    program = load_state(load_program(args.program), args.load)
    given = parse_assignments(args.input, "--input")
    if args.data and given:
        raise UsageError("give either --input key=value ... or --data FILE, not both")
    if not args.data and not given:
        raise UsageError("say what to run on: --input key=value (repeat for each input) or --data FILE")
    use_lm(args.lm)
    if given:
        print(json.dumps(_outputs(program(**given)), ensure_ascii=False))
        return EXIT_OK
    data = load_data(args.data, parse_inputs(args.inputs) or input_names(program))
    failures = 0
    for ex in data:
        try:
            print(json.dumps(_outputs(program(**ex.inputs())), ensure_ascii=False), flush=True)
        except LMProgError as exc:
            failures += 1
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False), flush=True)
    if failures:
        print(f"lmprog run: {failures} of {len(data)} examples failed", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _outputs(pred: Any) -> dict[str, Any]:
    from .eval_result import jsonable

    return jsonable(pred.toDict() if hasattr(pred, "toDict") else pred)  # type: ignore[no-any-return]


def cmd_inspect(args: argparse.Namespace) -> int:
    from .state import read_program_file

    saved = read_program_file(Path(args.file))
    if args.json:
        print(json.dumps({"provenance": saved.provenance, "predictors": saved.state}, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(describe_saved(saved.provenance, saved.state, str(args.file), width=args.width))
    return EXIT_OK


def describe_saved(provenance: dict[str, Any], predictors: dict[str, Any], title: str, width: int = 100) -> str:
    """A readable account of a saved program: provenance, then instructions and demos per predictor."""
    lines = [title, "provenance:"]
    for key, value in provenance.items():
        lines.append(f"  {key}: {_clip(_text(value), width)}")
    for name, state in predictors.items():
        sig = state.get("signature") or {}
        fields = sig.get("fields") or []
        demos = state.get("demos") or []
        kinds: dict[str, int] = {}
        for d in demos:
            kinds[d.get("kind", "labelled")] = kinds.get(d.get("kind", "labelled"), 0) + 1
        lines += ["", f"predictor {name!r}: {sig.get('name', '?')}({_signature_text(fields)})",
                  f"  instructions: {_clip(_one_line(str(state.get('instructions') or '')), width)}",
                  f"  demos: {len(demos)}" + (
                      f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if demos else "")]
        order = [f["name"] for f in fields]
        for i, d in enumerate(demos, 1):
            values = d.get("fields") or {}
            lines.append(f"  [{i}] {d.get('kind', 'labelled')}")
            for key in sorted(values, key=lambda k: order.index(k) if k in order else len(order)):
                lines.append(f"      {key}: {_clip(_text(values[key]), width)}")
    return "\n".join(lines)


def _signature_text(fields: list[dict[str, Any]]) -> str:
    def part(role: str) -> str:
        return ", ".join(f["name"] if f.get("type") == "str" else f"{f['name']}: {f.get('type')}"
                         for f in fields if f.get("role") == role)

    return f"{part('input')} -> {part('output')}"


def _text(value: Any) -> str:
    return _one_line(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run_quickstart

    result = run_quickstart(args.out, lm=args.lm, seed=args.seed)
    return EXIT_OK if result.comparison.n else EXIT_FAILED


# -- the parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lmprog", description="Compile, evaluate, run and inspect lmprog programs.",
                     epilog="PROGRAM is module:attribute (a Module, a Module class, or a function returning "
                            "one). The LM is --lm, else LMPROG_LM, else the embedded local/gemma-3-270m.")
    parser.add_argument("--version", action="version", version=f"lmprog {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002 - argparse's own word
        return sub.add_parser(name, help=help, description=help)

    def program_args(p: argparse.ArgumentParser, data_required: bool = True) -> None:
        p.add_argument("program", metavar="PROGRAM", help="module:attribute, e.g. myprog:classify")
        if data_required:
            p.add_argument("--data", required=True, metavar="FILE", help="examples (.jsonl, .csv or .tsv)")
            p.add_argument("--inputs", required=True, metavar="A,B", help="which fields are inputs, comma-separated")
        p.add_argument("--lm", metavar="MODEL", help="LM to use, e.g. openai/gpt-4o-mini (default: LMPROG_LM or "
                                                    "the embedded model)")

    c = add("compile", "Compile PROGRAM against labelled data with an optimizer; save the result.")
    program_args(c)
    c.add_argument("--metric", required=True, help=f"{', '.join(METRIC_NAMES)} or module:function")
    c.add_argument("--optimizer", required=True, help="random_search, bootstrap or labeled")
    c.add_argument("--valset", metavar="FILE", help="validation examples (default: held out from --data)")
    c.add_argument("--seed", type=int, help="the optimizer's random seed")
    c.add_argument("--max-calls", type=int, metavar="N", help="stop the search after N LM calls")
    c.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="an optimizer option, e.g. --opt num_candidates:=8 (key:=JSON, key=text); repeatable")
    c.add_argument("--out", default="compiled.json", metavar="FILE", help="where to save (default compiled.json)")
    c.add_argument("--report", metavar="FILE", help="where to save the compile report (default OUT.report.json)")
    c.add_argument("--run-dir", metavar="DIR", help="where the search keeps its state, so that running the same "
                   "command again after an interruption resumes it (default: OUT with suffix .run)")
    c.set_defaults(handler=cmd_compile)

    e = add("evaluate", "Score PROGRAM on labelled data with a metric, with a confidence interval.")
    program_args(e)
    e.add_argument("--metric", required=True, help=f"{', '.join(METRIC_NAMES)} or module:function")
    e.add_argument("--load", metavar="FILE", help="a compiled program saved by `lmprog compile`")
    e.add_argument("--threads", type=int, metavar="N", help="worker threads")
    e.add_argument("--report", metavar="FILE", help="save every row to FILE (.json or .csv)")
    e.set_defaults(handler=cmd_evaluate)

    r = add("run", "Run PROGRAM on inputs and print its outputs as JSON, one line per example.")
    program_args(r, data_required=False)
    r.add_argument("--load", metavar="FILE", help="a compiled program saved by `lmprog compile`")
    r.add_argument("--input", action="append", default=[], metavar="KEY=VALUE",
                   help="one input (key=text or key:=JSON); repeat for each input")
    r.add_argument("--data", metavar="FILE", help="run on every example of FILE instead")
    r.add_argument("--inputs", metavar="A,B", help="with --data: the input fields (default: the program's)")
    r.set_defaults(handler=cmd_run)

    i = add("inspect", "Show a saved program's instructions, demos and provenance (no code is run).")
    i.add_argument("file", metavar="FILE", help="a file saved by `lmprog compile` or program.save()")
    i.add_argument("--json", action="store_true", help="print the saved state as JSON")
    i.add_argument("--width", type=int, default=100, help="clip long values to this many characters")
    i.set_defaults(handler=cmd_inspect)

    q = add("quickstart", "Compile a sentiment classifier on the embedded model and show the gain on held-out data.")
    q.add_argument("--out", default="lmprog-quickstart", metavar="DIR", help="where to save results")
    q.add_argument("--lm", metavar="MODEL", help="LM to use (default: the embedded local/gemma-3-270m)")
    q.add_argument("--seed", type=int, default=0, help="seed of the data split and the search")
    q.set_defaults(handler=cmd_quickstart)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lmprog` console script; returns the exit status."""
    import warnings

    parser = build_parser()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args = parser.parse_args(argv)
            return int(args.handler(args))
    except BrokenPipeError:  # e.g. `lmprog run ... | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        _fail(f"lmprog: error: {_one_line(str(exc))}")
        return EXIT_USAGE
    except LMProgError as exc:
        _fail(f"lmprog: {type(exc).__name__}: {_one_line(str(exc))}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _fail("lmprog: interrupted")
        return 130


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    print(f"lmprog: warning: {_one_line(str(message))}", file=sys.stderr)


def _fail(line: str) -> None:
    print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
