"""Labels of a probe's rows and how they are split and scored: parsing single labels or tags, a seeded stratified
split, mean average precision over tags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .features import LISTED, cell_text


# ----------------------------------------------------------------------------------- labels
def parse_labels(values: Sequence[Any], separator: str = "") -> list[tuple[str, ...] | None]:
    """Raw attribute values -> per row a tuple of labels (one, or the tags), or None when empty.

    Blanks around labels and tags are stripped; empty tags are dropped, repeated tags kept once.
    """
    out: list[tuple[str, ...] | None] = []
    for value in values:
        text = cell_text(value)
        if text is None:
            out.append(None)
        elif separator:
            tags = tuple(dict.fromkeys(t.strip() for t in text.split(separator) if t.strip()))
            out.append(tags or None)
        else:
            out.append((text,))
    return out


# ----------------------------------------------------------------------------------- split / metrics
def stratified_split(strata: Sequence[Any], test_fraction: float, seed: int) -> np.ndarray:
    """Boolean "is test" mask: each stratum with >= 2 rows puts round(n * fraction) rows, at least one
    and never all, in the test split; strata of one row stay in training. Seeded and order-free."""
    strata = np.asarray([str(s) for s in strata], dtype=object)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(strata), dtype=bool)
    for key in sorted(set(strata.tolist())):
        members = np.flatnonzero(strata == key)
        if len(members) < 2:
            continue
        n_test = int(min(max(round(len(members) * test_fraction), 1), len(members) - 1))
        is_test[rng.permutation(members)[:n_test]] = True
    return is_test


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray, classes: Sequence[str]
                           ) -> tuple[float, dict[str, float], list[str]]:
    """(macro mean AP, AP per tag, tags without a positive row) over a (rows, tags) 0/1 matrix.

    AP is undefined for a tag with no positive row, so such tags are left out of the mean and listed.
    """
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    per_class: dict[str, float] = {}
    excluded: list[str] = []
    for j, name in enumerate(classes):
        if y_true[:, j].sum() == 0:
            excluded.append(name)
            continue
        per_class[name] = float(average_precision_score(y_true[:, j], scores[:, j]))
    if not per_class:
        raise ValueError("no tag has a positive row in the test split, so mAP is undefined; "
                         "use more rows or a larger test fraction")
    return float(np.mean(list(per_class.values()))), per_class, excluded


def join_names(items: Sequence[str]) -> str:
    items = list(items)
    listed = ", ".join(repr(s) for s in items[:LISTED])
    return listed + (f", … ({len(items)} in all)" if len(items) > LISTED else "")
