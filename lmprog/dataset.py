"""Datasets: lists of Examples that know which keys are inputs; loading, seeded splits and samples."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, overload

from .errors import UsageError
from .example import Example


class Dataset(Sequence[Example]):
    """An ordered collection of Examples with shared input keys.

    `Dataset.from_jsonl("reviews.jsonl", inputs=["review"])`, `.split(0.5, 0.25, 0.25, seed=0)`, `.sample(8)`.
    """

    def __init__(self, examples: Iterable[Example | dict[str, Any]], inputs: Iterable[str] | None = None,
                 name: str | None = None) -> None:
        keys = tuple(inputs) if inputs is not None else None
        rows: list[Example] = []
        for i, ex in enumerate(examples):
            e = ex if isinstance(ex, Example) else Example(ex)
            if keys is not None:
                missing = [k for k in keys if k not in e]
                if missing:
                    raise UsageError(f"example {i} has no input field(s) {missing}; its fields are {e.keys()}")
                e = e.with_inputs(*keys)
            elif e.input_keys is None:
                raise UsageError("say which fields are inputs: Dataset(rows, inputs=['question'])")
            rows.append(e)
        self.examples = rows
        self.input_keys = keys if keys is not None else (tuple(sorted(rows[0].input_keys or ())) if rows else ())
        self.name = name

    # -- loading --------------------------------------------------------------------------------------------
    @classmethod
    def from_list(cls, rows: Iterable[dict[str, Any]], inputs: Iterable[str], name: str | None = None) -> Dataset:
        return cls(rows, inputs=inputs, name=name)

    @classmethod
    def from_jsonl(cls, path: str | Path, inputs: Iterable[str]) -> Dataset:
        p = Path(path)
        rows = []
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{p}:{n}: not valid JSON ({exc.msg}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise UsageError(f"{p}:{n}: each line must be a JSON object, got {type(row).__name__}")
            rows.append(row)
        return cls(rows, inputs=inputs, name=p.name)

    @classmethod
    def from_csv(cls, path: str | Path, inputs: Iterable[str], delimiter: str = ",") -> Dataset:
        p = Path(path)
        try:
            with p.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f, delimiter=delimiter))
        except OSError as exc:
            raise UsageError(f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
        return cls(rows, inputs=inputs, name=p.name)

    @classmethod
    def load(cls, path: str | Path, inputs: Iterable[str]) -> Dataset:
        """Load by extension: .jsonl/.json lines, .csv, .tsv."""
        suffix = Path(path).suffix.lower()
        if suffix in (".jsonl", ".ndjson", ".json"):
            return cls.from_jsonl(path, inputs)
        if suffix in (".csv", ".tsv"):
            return cls.from_csv(path, inputs, delimiter="\t" if suffix == ".tsv" else ",")
        raise UsageError(f"{str(path)!r}: unknown data format {suffix!r}; use .jsonl, .csv or .tsv")

    # -- sequence -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.examples)

    @overload
    def __getitem__(self, i: int) -> Example: ...
    @overload
    def __getitem__(self, i: slice) -> Dataset: ...
    def __getitem__(self, i: int | slice) -> Example | Dataset:
        if isinstance(i, slice):
            return self._new(self.examples[i])
        return self.examples[i]

    def __add__(self, other: Dataset) -> Dataset:
        return self._new(self.examples + list(other))

    def _new(self, rows: list[Example]) -> Dataset:
        d = Dataset.__new__(Dataset)
        d.examples, d.input_keys, d.name = list(rows), self.input_keys, self.name
        return d

    def __repr__(self) -> str:
        return f"Dataset({len(self)} examples, inputs={list(self.input_keys)})"

    # -- sampling -------------------------------------------------------------------------------------------
    def split(self, *fractions: float, seed: int = 0) -> tuple[Dataset, ...]:
        """Shuffle with `seed` and cut into parts of these fractions (they must sum to at most 1)."""
        if not fractions or any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
            raise UsageError(f"split fractions must be positive and sum to at most 1, got {fractions}")
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        out, start = [], 0
        for i, f in enumerate(fractions):
            last_of_all = i == len(fractions) - 1 and abs(sum(fractions) - 1) < 1e-9
            end = len(order) if last_of_all else start + round(f * len(order))
            out.append(self._new([self.examples[j] for j in order[start:end]]))
            start = end
        return tuple(out)

    def sample(self, k: int, seed: int = 0) -> Dataset:
        if k > len(self):
            raise UsageError(f"cannot sample {k} examples from a dataset of {len(self)}")
        return self._new(random.Random(seed).sample(self.examples, k))

    def hash(self) -> str:
        """A content hash of the examples and input keys (for manifests and provenance)."""
        import hashlib

        h = hashlib.sha256()
        h.update(json.dumps(list(self.input_keys)).encode())
        for e in self.examples:
            h.update(json.dumps(e.toDict(), sort_keys=True, default=str).encode())
            h.update(b"\n")
        return h.hexdigest()[:16]


def data_hash(examples: Iterable[Example]) -> str:
    """Content hash of any iterable of Examples."""
    rows = list(examples)
    if isinstance(examples, Dataset):
        return examples.hash()
    import hashlib

    h = hashlib.sha256()
    for e in rows:
        h.update(json.dumps(e.toDict(), sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
