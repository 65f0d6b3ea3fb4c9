"""Saved programs: JSON keyed by predictor and field name, with a schema version and provenance.

    {"format": "lmprog.program", "schema_version": 1,
     "provenance": {"lmprog_version": ..., "lm": ..., "optimizer": ..., "data_hash": ..., "saved_at": ...},
     "predictors": {"<dotted name>": {"signature": {"fingerprint", "fields": [...]}, "instructions": "...",
                                       "demos": [{"kind": "labelled" | "bootstrapped", "fields": {...}}]}}}

Loading reads JSON only — it never imports or executes anything — and refuses, naming what differs, a file
whose predictors or fields do not match the program.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from .errors import UsageError
from .signature import Signature, field_role, type_name

if TYPE_CHECKING:
    from .module import Module
    from .predict import Demo

FORMAT = "lmprog.program"
LABELLED, BOOTSTRAPPED = "labelled", "bootstrapped"
DEMO_KINDS = frozenset({LABELLED, BOOTSTRAPPED})
SCHEMA_VERSION = 1


def signature_json(sig: type[Signature]) -> dict[str, Any]:
    return {
        "name": sig.__name__,
        "fingerprint": sig.fingerprint(),
        "fields": [{"name": n, "role": field_role(f), "type": type_name(f.annotation)}
                   for n, f in sig.model_fields.items()],
    }


def demo_to_json(demo: Demo, sig: type[Signature]) -> dict[str, Any]:
    fields = {}
    for k, v in demo.items():
        if k in sig.model_fields:
            fields[k] = sig.type_adapter(k).dump_python(v, mode="json")
        else:
            fields[k] = pydantic.TypeAdapter(Any).dump_python(v, mode="json")
    return {"kind": demo.kind, "fields": fields}


def demo_from_json(d: dict[str, Any], sig: type[Signature], where: str = "demo") -> Demo:
    from .predict import Demo

    values = {}
    for k, v in d.get("fields", {}).items():
        if k not in sig.model_fields:
            values[k] = v
            continue
        try:
            values[k] = sig.type_adapter(k).validate_python(v)
        except pydantic.ValidationError as exc:
            msg = exc.errors()[0].get("msg", str(exc))
            raise UsageError(f"{where}, field {k!r}: value {v!r} does not fit {type_name(sig.annotation(k))} "
                             f"({msg})") from None
    return Demo(values, kind=d.get("kind", "labelled"))


def check_compatible(named: dict[str, Any], state: dict[str, Any]) -> None:
    """Raise UsageError naming every predictor or field that differs between a program and saved state."""
    problems = []
    missing = [n for n in named if n not in state]
    extra = [n for n in state if n not in named]
    if missing:
        problems.append(f"predictor(s) {missing} are in the program but not in the file")
    if extra:
        problems.append(f"predictor(s) {extra} are in the file but not in the program")
    for name, p in named.items():
        saved = state.get(name)
        if not isinstance(saved, dict):
            continue
        sig = saved.get("signature") or {}
        if sig.get("fingerprint") == p.signature.fingerprint():
            continue
        have = {f["name"]: (f["role"], f["type"]) for f in sig.get("fields", [])}
        want = {n: (field_role(f), type_name(f.annotation)) for n, f in p.signature.model_fields.items()}
        diffs = [f"{n}: program has {want.get(n, 'nothing')}, file has {have.get(n, 'nothing')}"
                 for n in sorted(set(have) | set(want)) if have.get(n) != want.get(n)]
        problems.append(f"predictor {name!r} has different fields ({'; '.join(diffs) or 'fingerprint differs'})")
    if problems:
        raise UsageError("saved program does not match this program: " + "; ".join(problems))


@dataclass
class SavedProgram:
    """The contents of a saved program file, for inspection or for loading into a program."""

    state: dict[str, Any]
    provenance: dict[str, Any]
    path: Path | None = None

    def into(self, program: Module) -> Module:
        """A copy of `program` carrying this saved state."""
        new = program.deepcopy()
        new.load_state(self.state)
        new.provenance = self.provenance  # type: ignore[attr-defined]
        return new


def _lm_names(program: Module) -> str:
    """The model(s) the program's predictors run on, as configured where it was saved."""
    from .settings import settings

    names = set()
    for _, p in program.named_predictors():
        lm = p.lm or settings().lm
        names.add(lm.model if lm is not None else "default")
    return ", ".join(sorted(names))


def _version() -> str:
    from . import __version__

    return __version__


def save_program(program: Module, path: Path, provenance: dict[str, Any]) -> Path:
    doc = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "provenance": {"lmprog_version": _version(), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "lm": _lm_names(program), **provenance},
        "predictors": program.dump_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: an interrupted save never leaves a half-written file in place of a good one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_program_file(path: Path) -> SavedProgram:
    """Read and validate a saved program; errors say what is wrong with the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read saved program {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{str(path)!r} is not a saved lmprog program: it is not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{str(path)!r} is not a saved lmprog program: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"{str(path)!r} is not a saved lmprog program (no \"format\": \"{FORMAT}\")")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(
            f"{str(path)!r} has schema_version {version!r}; this lmprog reads version {SCHEMA_VERSION}. "
            "Upgrade lmprog or re-save the program with this version."
        )
    preds = doc.get("predictors")
    if not isinstance(preds, dict):
        raise UsageError(f"{str(path)!r}: \"predictors\" must be an object keyed by predictor name")
    for name, p in preds.items():
        if not isinstance(p, dict) or not isinstance(p.get("demos", []), list):
            raise UsageError(f"{str(path)!r}: predictor {name!r} must be an object with a list of demos")
        if not isinstance(p.get("instructions", ""), str):
            raise UsageError(f"{str(path)!r}: predictor {name!r}: \"instructions\" must be a string")
        for i, d in enumerate(p.get("demos", [])):
            if not isinstance(d, dict) or not isinstance(d.get("fields"), dict):
                raise UsageError(f"{str(path)!r}: predictor {name!r}, demo {i} must have an object \"fields\"")
            if d.get("kind", LABELLED) not in DEMO_KINDS:
                raise UsageError(f"{str(path)!r}: predictor {name!r}, demo {i} has kind {d.get('kind')!r}; "
                                 f"expected one of {sorted(DEMO_KINDS)}")
    return SavedProgram(state=preds, provenance=doc.get("provenance") or {}, path=path)


def load(path: str | Path, program: Module | None = None) -> Any:
    """`lp.load(path)` → the file's SavedProgram; `lp.load(path, program)` → a copy of program with it loaded."""
    saved = read_program_file(Path(path))
    return saved if program is None else saved.into(program)
