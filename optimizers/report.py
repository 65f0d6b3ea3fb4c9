"""CompileReport: what a compile tried, what it chose and why, what it cost, and how to reproduce it."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Candidate:
    """One program the search scored on the validation set."""

    name: str
    kind: str  # "zero_shot", "labelled", "bootstrapped"
    params: dict[str, Any]
    score: float | None = None
    ci: tuple[float, float] | None = None
    n: int = 0
    errors: int = 0
    n_demos: int = 0
    complete: bool = True
    state: dict[str, Any] = field(default_factory=dict, repr=False)
    resumed: bool = False

    def to_dict(self, with_state: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_state:
            d.pop("state")
        return d


@dataclass
class CompileReport:
    """Everything about one compile. `str(report)` is the table printed at the end of a run."""

    optimizer: str
    params: dict[str, Any]
    seed: int
    candidates: list[Candidate] = field(default_factory=list)
    best: int | None = None
    reason: str = ""
    stopped_by: str | None = None
    heldout: str | None = None
    estimated_calls: int | None = None
    bootstrap: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def best_candidate(self) -> Candidate | None:
        return None if self.best is None else self.candidates[self.best]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidates"] = [c.to_dict() for c in self.candidates]
        return d

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        return p

    def table(self) -> str:
        """The candidates with their validation scores and intervals; the chosen one is starred."""
        lines = [f"{'':2}{'candidate':<36}{'demos':>6}{'val score':>11}{'95% CI':>17}{'errors':>8}"]
        for i, c in enumerate(self.candidates):
            mark = "* " if i == self.best else "  "
            score = "—" if c.score is None else f"{c.score:.3f}"
            ci = "—" if not c.ci or any(math.isnan(x) for x in c.ci) else f"[{c.ci[0]:.3f}, {c.ci[1]:.3f}]"
            tail = "" if c.complete else "  (partial)"
            lines.append(f"{mark}{c.name:<36}{c.n_demos:>6}{score:>11}{ci:>17}{c.errors:>8}{tail}")
        return "\n".join(lines)

    def __str__(self) -> str:
        total = self.usage.get("total", {})
        head = [f"{self.optimizer} (seed {self.seed}) — {len(self.candidates)} candidate(s), "
                f"{total.get('billed_calls', 0)} LM calls ({total.get('cache_hits', 0)} cached), "
                f"{total.get('total_tokens', 0)} tokens, ${total.get('cost', 0.0):.4f}, {self.wall_time:.1f} s"]
        if self.heldout:
            head.append(self.heldout)
        if self.stopped_by:
            head.append(f"stopped early: {self.stopped_by}")
        return "\n".join([*head, self.table(), f"chosen: {self.reason}", *self.notes])


def manifest(program: Any, datasets: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Model ids, data hashes and versions needed to reproduce a compile."""
    from importlib import metadata

    from lmprog import __version__
    from lmprog.dataset import data_hash
    from lmprog.settings import settings

    models = set()
    for _, p in program.named_predictors():
        lm = p.lm or settings().lm
        models.add(lm.model if lm is not None else "default (LMPROG_LM or local/gemma-3-270m)")
    versions = {"lmprog": __version__, "python": platform.python_version()}
    for dist in ("pydantic", "litellm", "optuna", "llama_cpp_python", "diskcache", "jinja2"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return {
        "models": sorted(models),
        "data": {name: {"n": len(d), "hash": data_hash(d)} for name, d in datasets.items() if d is not None},
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
