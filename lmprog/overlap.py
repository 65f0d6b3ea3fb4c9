"""Data hygiene: find inputs that appear in two splits, exactly or nearly (`lp.check_overlap(train, test)`).

Texts are normalized (case, punctuation, articles, whitespace) and compared two ways: equal normalized text
is an exact duplicate; otherwise word n-gram sets are compared by containment |A∩B| / min(|A|, |B|) — high
when one text is a lightly edited copy of the other or sits inside it — and pairs at or above `threshold`
are near duplicates. An inverted index over n-grams keeps this linear in the data for typical splits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .example import Example
from .metrics import normalize_text


def normalize(value: Any) -> str:
    """The normalized text a value is compared by (lists and dicts by their items, in order)."""
    if isinstance(value, dict):
        return " ".join(f"{k} {normalize(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return " ".join(normalize(v) for v in value)
    return normalize_text(value)


@dataclass(frozen=True)
class OverlapPair:
    """Row `a_index` of the first split and row `b_index` of the second are duplicates (`kind`)."""

    a_index: int
    b_index: int
    kind: str  # "exact" or "near"
    similarity: float
    a_text: str
    b_text: str


@dataclass
class OverlapReport:
    """Pairs of overlapping inputs; falsy when the splits are clean."""

    pairs: list[OverlapPair] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    ngram: int = 0
    threshold: float = 0.0
    n_a: int = 0
    n_b: int = 0

    @property
    def exact(self) -> list[OverlapPair]:
        return [p for p in self.pairs if p.kind == "exact"]

    @property
    def near(self) -> list[OverlapPair]:
        return [p for p in self.pairs if p.kind == "near"]

    @property
    def a_indices(self) -> list[int]:
        """Rows of the first split that have a duplicate in the second (e.g. to drop them)."""
        return sorted({p.a_index for p in self.pairs})

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def summary(self, max_pairs: int = 10) -> str:
        head = (f"{len(self.exact)} exact and {len(self.near)} near-duplicate pairs between splits of "
                f"{self.n_a} and {self.n_b} rows (fields {self.fields}, {self.ngram}-grams, "
                f"containment >= {self.threshold})")
        lines = [head]
        for p in self.pairs[:max_pairs]:
            lines.append(f"  a[{p.a_index}] ~ b[{p.b_index}] {p.kind} {p.similarity:.2f}: {_clip(p.a_text)!r} "
                         f"vs {_clip(p.b_text)!r}")
        if len(self.pairs) > max_pairs:
            lines.append(f"  ... {len(self.pairs) - max_pairs} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _fields_of(a: Sequence[Any], b: Sequence[Any], fields: Sequence[str] | None) -> list[str]:
    if fields is not None:
        return list(fields)
    first = next((x for x in [*a[:1], *b[:1]] if isinstance(x, Example)), None)
    if first is not None and first.input_keys is not None:
        return sorted(first.input_keys)
    if first is not None:
        return sorted(first.keys())
    return []


def _text(row: Any, fields: list[str]) -> str:
    if isinstance(row, str):
        return normalize(row)
    missing = [f for f in fields if f not in row]
    if missing:
        raise UsageError(f"check_overlap: a row lacks field(s) {missing}; pass fields=[...] present in both")
    return " ".join(normalize(row[f]) for f in fields)


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = text.split()
    if len(words) <= n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def check_overlap(
    a: Iterable[Any],
    b: Iterable[Any],
    fields: Sequence[str] | None = None,
    ngram: int = 5,
    threshold: float = 0.6,
) -> OverlapReport:
    """Exact and near-duplicate inputs between two splits (Examples, dicts or strings).

    fields: which fields make a row's text (default: the examples' input fields).
    ngram: word n-gram size; texts of at most `ngram` words are one n-gram, so they match only exactly
        after normalization — lower `ngram` for very short inputs.
    threshold: the n-gram containment at or above which a pair counts as a near duplicate.
    """
    if ngram < 1:
        raise UsageError(f"ngram must be >= 1, got {ngram}")
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"threshold must be in (0, 1], got {threshold}")
    rows_a, rows_b = list(a), list(b)
    names = _fields_of(rows_a, rows_b, fields)
    texts_a = [_text(r, names) for r in rows_a]
    texts_b = [_text(r, names) for r in rows_b]
    report = OverlapReport(fields=names, ngram=ngram, threshold=threshold, n_a=len(rows_a), n_b=len(rows_b))

    by_text: dict[str, list[int]] = {}
    for j, t in enumerate(texts_b):
        by_text.setdefault(t, []).append(j)
    shingles_b = [_shingles(t, ngram) for t in texts_b]
    index: dict[tuple[str, ...], list[int]] = {}
    for j, sh in enumerate(shingles_b):
        for g in sh:
            index.setdefault(g, []).append(j)

    for i, t in enumerate(texts_a):
        exact = set(by_text.get(t, [])) if t else set()
        for j in sorted(exact):
            report.pairs.append(OverlapPair(i, j, "exact", 1.0, t, texts_b[j]))
        sh = _shingles(t, ngram)
        if not sh:
            continue
        shared = Counter(j for g in sh for j in index.get(g, ()))
        for j, common in sorted(shared.items()):
            if j in exact:
                continue
            sim = common / min(len(sh), len(shingles_b[j]))
            if sim >= threshold:
                report.pairs.append(OverlapPair(i, j, "near", sim, t, texts_b[j]))
    return report
