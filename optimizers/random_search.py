"""RandomSearch: score zero-shot, labelled-only and bootstrapped demo sets of several seeds and sizes on the
valset and keep the best (DSPy's BootstrapFewShotWithRandomSearch).

On a small base model the choice of demos moves accuracy by tens of points; this search exists to find the
good sets. Its state lives in an optuna study (in memory, or SQLite under `run_dir`, or any optuna storage
URL): each finished candidate is a completed trial carrying its demos, so a killed compile resumes where it
stopped, and several processes pointed at one RDB storage share the work.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from lmprog.example import Example
from lmprog.module import Module

from .base import CompileRun, Metric, Optimizer, Scored, input_key, without_demos
from .bootstrap import assemble, bootstrap
from .labeled import with_labelled


def candidate_specs(num_candidates: int, max_bootstrapped: int, max_labeled: int, seed: int) -> list[dict[str, Any]]:
    """Zero-shot, labelled-only and in-order bootstrapped first, then `num_candidates` sampled sets that
    alternate bootstrapped and labelled, with random seeds and sizes."""
    specs: list[dict[str, Any]] = [
        {"kind": "zero_shot"},
        {"kind": "labelled", "seed": seed, "size": max_labeled},
        {"kind": "bootstrapped", "seed": None, "size": max_bootstrapped},
    ]
    rng = random.Random(seed)
    top = max(1, max_bootstrapped, max_labeled)
    for i in range(num_candidates):
        kind = "bootstrapped" if i % 2 == 0 and max_bootstrapped > 0 else "labelled"
        size = rng.randint(1, top)
        specs.append({"kind": kind, "seed": rng.randrange(2**31), "size": size})
    return [s for s in specs if s["kind"] != "labelled" or max_labeled > 0]


def spec_name(spec: dict[str, Any]) -> str:
    if spec["kind"] == "zero_shot":
        return "zero-shot"
    order = "in order" if spec.get("seed") is None else f"seed={spec['seed']}"
    return f"{spec['kind']} {spec['size']} ({order})"


class RandomSearch(Optimizer):
    """Try `num_candidates` demo sets (plus zero-shot, labelled-only and in-order bootstrapped) and keep the
    one with the best validation score; ties go to fewer demos."""

    name = "random_search"

    def __init__(self, metric: Metric | None = None, *, num_candidates: int = 6, max_bootstrapped: int = 4,
                 max_labeled: int = 4, max_rounds: int = 1, teacher: Module | None = None,
                 metric_threshold: float | None = None, seed: int = 0, storage: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(metric, seed=seed, **kwargs)
        self.num_candidates = num_candidates
        self.max_bootstrapped = max_bootstrapped
        self.max_labeled = max_labeled
        self.max_rounds = max_rounds
        self.teacher = teacher
        self.metric_threshold = metric_threshold
        self.storage = storage

    def estimate_calls(self, program: Module, train: list[Example], val: list[Example]) -> int:
        specs = candidate_specs(self.num_candidates, self.max_bootstrapped, self.max_labeled, self.seed)
        per_run = max(1, len(program.named_predictors()))
        boot = sum(min(len(train), 2 * s["size"]) for s in specs if s["kind"] == "bootstrapped")
        return (boot + len(specs) * len(val)) * per_run

    def _study(self, program: Module, train: list[Example], val: list[Example], run: CompileRun) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = self.storage
        if storage is None and run.run_dir is not None:
            run.run_dir.mkdir(parents=True, exist_ok=True)
            storage = f"sqlite:///{Path(run.run_dir).resolve() / 'search.db'}"
        # The study name ties stored results to this exact search: program shape, data and settings.
        ident = json.dumps({
            "predictors": [(n, p.signature.fingerprint()) for n, p in program.named_predictors()],
            "instructions": [p.instructions for p in program.predictors()],
            "train": [input_key(e) for e in train], "val": [input_key(e) for e in val],
            "params": {k: v for k, v in self.params().items() if k not in ("storage", "threads")},
            "models": run.report.manifest.get("models"),
        }, sort_keys=True, default=str)
        name = "random_search-" + hashlib.sha256(ident.encode()).hexdigest()[:16]
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
        run.report.manifest["search_storage"] = storage or "in-memory"
        run.report.manifest["study"] = name
        return study

    def search(self, program: Module, train: list[Example], val: list[Example], run: CompileRun) -> None:
        import optuna

        assert self.metric is not None
        study = self._study(program, train, val, run)
        finished: dict[str, Any] = {}
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if "spec" in t.user_attrs:
                finished[t.user_attrs["spec"]] = t
        boot_stats: list[dict[str, Any]] = []
        specs = candidate_specs(self.num_candidates, self.max_bootstrapped, self.max_labeled, self.seed)
        for spec in specs:
            key = json.dumps(spec, sort_keys=True)
            name = spec_name(spec)
            if key in finished:
                t = finished[key]
                cand = without_demos(program).load_state(json.loads(t.user_attrs["state"]))
                ci = t.user_attrs.get("ci")
                run.add(name, spec["kind"], spec, cand, scored=Scored(
                    t.value, tuple(ci) if ci else None, t.user_attrs.get("n", 0), t.user_attrs.get("errors", 0), True))
                run.report.candidates[-1].resumed = True
                continue
            cand = self._build(program, train, spec, run, boot_stats)
            trial = study.ask()
            trial.set_user_attr("spec", key)
            scored = run.score(cand, name)
            c = run.add(name, spec["kind"], spec, cand, scored=scored)
            if scored.lm_errors:
                run.report.notes.append(f"{name}: {scored.lm_errors} validation row(s) failed on LM errors; "
                                        "not stored for resume, so a re-run scores it again")
            if c.complete and c.score is not None and not scored.lm_errors:
                trial.set_user_attr("state", json.dumps(c.state))
                trial.set_user_attr("ci", list(c.ci) if c.ci else None)
                trial.set_user_attr("n", c.n)
                trial.set_user_attr("errors", c.errors)
                study.tell(trial, c.score)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        resumed = sum(c.resumed for c in run.report.candidates)
        if resumed:
            run.report.notes.append(f"resumed: {resumed} candidate(s) were read from the search storage, not re-run")
        run.report.bootstrap = {"runs": boot_stats}

    def _build(self, program: Module, train: list[Example], spec: dict[str, Any], run: CompileRun,
               boot_stats: list[dict[str, Any]]) -> Module:
        if spec["kind"] == "zero_shot":
            return without_demos(program)
        if spec["kind"] == "labelled":
            return with_labelled(program, train, spec["size"], spec["seed"])
        outcome = bootstrap(program, train, self.metric, teacher=self.teacher,  # type: ignore[arg-type]
                            max_bootstrapped=spec["size"], max_labeled=self.max_labeled, max_rounds=self.max_rounds,
                            threshold=self.metric_threshold, seed=spec["seed"], progress=run.progress)
        boot_stats.append({"spec": spec, **outcome.summary()})
        return assemble(program, outcome, train, spec["size"], spec["size"], spec["seed"] or 0)
