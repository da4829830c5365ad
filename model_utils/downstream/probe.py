"""Linear probes on GeoCLIP embeddings: the paper's downstream-classifier experiment for any labels.

Given per-row labels (one class, or multi-label tags split by a separator as in Geo-tagged
NUS-WIDE) and per-row coordinates and/or photos, build one feature set ("gps", "latlon",
"image" or "gps+image"), train a scikit-learn logistic regression (one-vs-rest for tags) on a
seeded split that is stratified wherever the class counts allow, and score it: accuracy and
macro-F1 for single labels, mean average precision for tags, per class and overall. Reports
are written as CSV + a self-contained HTML page, each atomically (temp file + rename).

Pure Python (numpy, scikit-learn; torch only through the model object): no Qt, no qgis.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Canceled
from ..progress import IsCanceled, Progress
from .features import FEATURE_KINDS, FeatureSet, build_features, row_list
from .labels import join_names, mean_average_precision, parse_labels, stratified_split

SPLIT_TRAIN, SPLIT_TEST, SPLIT_UNLABELLED, SPLIT_EXCLUDED = "train", "test", "unlabelled", "excluded"


# ----------------------------------------------------------------------------------- config / results
@dataclass(frozen=True)
class ProbeConfig:
    """What to train and how. ``separator`` empty means one label per row."""

    features: str = "gps"
    separator: str = ""
    test_fraction: float = 0.3
    seed: int = 0
    c: float = 10.0
    """Inverse regularisation strength of the logistic regression. Unit-length 512-d embeddings have
    small per-dimension values, so scikit-learn's C=1 over-regularises them (measured on GeoNames
    countries: accuracy 0.951 at C=1, 0.974 at C=10, macro-F1 0.62 vs 0.85)."""
    max_iter: int = 1000
    min_rows_per_class: int = 2
    """Classes (tags) with fewer labelled rows cannot be in both splits; they are dropped and listed."""
    threshold: float = 0.5
    """Multi-label: a tag is predicted when its probability reaches this."""
    label_name: str = "label"
    photo_name: str = "photo"
    """Names of the label / photo columns, used in messages and reports."""

    @property
    def multi_label(self) -> bool:
        return self.separator != ""

    @property
    def needs_images(self) -> bool:
        return "image" in self.features

    @property
    def needs_model(self) -> bool:
        return self.features != "latlon"

    def check(self) -> None:
        if self.features not in FEATURE_KINDS:
            raise ValueError(f"features must be one of {', '.join(FEATURE_KINDS)}; got {self.features!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test fraction must be between 0 and 1 (exclusive); got {self.test_fraction}")
        if not self.c > 0:
            raise ValueError(f"the regularisation strength C must be > 0; got {self.c}")
        if self.min_rows_per_class < 2:
            raise ValueError("min_rows_per_class must be at least 2 (one row for training, one for testing)")


@dataclass(frozen=True)
class ClassScore:
    """One class (or tag): how many rows it had and how well the probe did on the test rows."""

    label: str
    n_train: int
    n_test: int
    precision: float
    recall: float
    f1: float
    average_precision: float | None = None
    """Multi-label only; None when the test split has no positive row for this tag."""


@dataclass
class ProbeResult:
    """Scores, per-class details, and a prediction for every row that had features."""

    config: ProbeConfig
    task: str  # "single-label" or "multi-label"
    classes: list[str]
    per_class: list[ClassScore]
    n_rows: int
    n_train: int
    n_test: int
    skipped: dict[str, int]
    accuracy: float | None = None
    macro_f1: float | None = None
    mean_ap: float | None = None
    ap_excluded: list[str] = field(default_factory=list)
    dropped_classes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Indices (into the input rows) of the rows that got a prediction."""
    split: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    """Per predicted row: "train", "test", "unlabelled" (no label) or "excluded" (rare class)."""
    probabilities: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.float32))
    """(len(rows), len(classes)) class (single-label) or per-tag (multi-label) probabilities."""

    @property
    def headline(self) -> tuple[str, float]:
        """The one number to quote: mAP for tags, accuracy for single labels."""
        if self.task == "multi-label":
            return "mAP", float(self.mean_ap if self.mean_ap is not None else float("nan"))
        return "accuracy", float(self.accuracy if self.accuracy is not None else float("nan"))

    def predicted(self) -> list[tuple[str, str, float]]:
        """Per predicted row: (predicted label(s) joined by the separator, top class, its probability)."""
        out = []
        for probs in self.probabilities:
            top = int(np.argmax(probs))
            if self.task == "multi-label":
                order = np.argsort(-probs, kind="stable")
                chosen = [self.classes[j] for j in order if probs[j] >= self.config.threshold]
                label = self.config.separator.join(chosen)
            else:
                label = self.classes[top]
            out.append((label, self.classes[top], float(probs[top])))
        return out

    def summary(self) -> list[tuple[str, Any]]:
        """(name, value) pairs for the summary CSV and the HTML header."""
        rows: list[tuple[str, Any]] = [
            ("task", self.task),
            ("features", self.config.features),
            ("label_field", self.config.label_name),
            ("separator", self.config.separator),
            ("classes", len(self.classes)),
            ("rows_in", self.n_rows),
            ("rows_train", self.n_train),
            ("rows_test", self.n_test),
        ]
        rows += [(f"skipped_{reason.replace(' ', '_')}", n) for reason, n in self.skipped.items()]
        if self.task == "multi-label":
            rows += [("mean_average_precision", self.mean_ap), ("macro_f1_at_threshold", self.macro_f1),
                     ("tags_scored", len(self.classes) - len(self.ap_excluded)),
                     ("tags_without_test_positives", len(self.ap_excluded))]
        else:
            rows += [("accuracy", self.accuracy), ("macro_f1", self.macro_f1)]
        rows += [("test_fraction", self.config.test_fraction), ("seed", self.config.seed), ("C", self.config.c),
                 ("dropped_rare_classes", len(self.dropped_classes))]
        return rows


# ----------------------------------------------------------------------------------- training
def _make_classifier(config: ProbeConfig):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = LogisticRegression(C=config.c, max_iter=config.max_iter, random_state=config.seed)
    head = OneVsRestClassifier(logistic) if config.multi_label else logistic
    # lat/lon in degrees span very different ranges: standardise them; embeddings are already unit length.
    return make_pipeline(StandardScaler(), head) if config.features == "latlon" else make_pipeline(head)


@dataclass
class _Rows:
    """Which rows the probe learns from and is scored on, decided before any fitting."""

    parsed: list  # each row's tags (None: no label)
    tags: list  # each row's tags among the kept classes
    kept: list[str]  # classes with enough rows for a split
    dropped: list[str]  # the rarer ones
    usable: np.ndarray  # a label and features
    in_probe: np.ndarray  # usable, and (single-label) of a kept class
    train: np.ndarray
    test: np.ndarray
    skipped: dict[str, int]


def _count_skipped(skipped: dict[str, int], reason: str, n: int) -> None:
    if n:
        skipped[reason] = skipped.get(reason, 0) + n


def _select_rows(config: ProbeConfig, labels: Sequence[Any], features: FeatureSet,
                 skipped: dict[str, int] | None) -> _Rows:
    """Parse the labels, keep classes with enough rows and split them; every reason to stop is a ValueError
    naming the label field."""
    n, name = len(labels), config.label_name
    if len(features.values) != n:
        raise ValueError(f"{n} labels but {len(features.values)} feature rows")
    parsed = parse_labels(labels, config.separator)
    skipped = dict(skipped or {})
    has_label = np.array([p is not None for p in parsed], dtype=bool)
    _count_skipped(skipped, "empty label", int((~has_label).sum()))
    if not has_label.any():
        raise ValueError(f"the label field '{name}' is empty (NULL or blank) in all {n} rows; "
                         f"choose a field with class values")
    _count_skipped(skipped, "unreadable photo", int((~features.ok).sum()))
    usable = has_label & features.ok
    if not usable.any():
        raise ValueError(f"no row has both a label in '{name}' and usable features "
                         f"({row_list(features.problems)})")
    counts = Counter(t for i in np.flatnonzero(usable) for t in parsed[i])
    if len(counts) < 2:
        raise ValueError(f"the label field '{name}' has only one class ('{next(iter(counts))}') in its "
                         f"{int(usable.sum())} labelled rows; a classifier needs at least two classes")
    kept = sorted(c for c, k in counts.items() if k >= config.min_rows_per_class)
    dropped = sorted((c for c, k in counts.items() if k < config.min_rows_per_class), key=lambda c: (counts[c], c))
    if len(kept) < 2:
        raise ValueError(f"too few rows per class in '{name}' to split into training and test rows: "
                         f"{len(kept)} of {len(counts)} classes have at least {config.min_rows_per_class} "
                         f"labelled rows (rare ones: {join_names(dropped)}); a probe needs at least two such classes")
    kept_set = set(kept)
    if config.multi_label:
        tags = [tuple(t for t in p if t in kept_set) if p is not None else None for p in parsed]
        in_probe = usable.copy()  # rows whose tags are all rare stay in as all-negative rows: information too
        strata = [min(t, key=lambda s: (counts[s], s)) if t else "" for t in tags]
    else:
        tags = parsed
        in_probe = usable & np.array([p is not None and p[0] in kept_set for p in parsed], dtype=bool)
        strata = [p[0] if p is not None else "" for p in parsed]
    n_rare = int((usable & ~in_probe).sum())
    if n_rare:
        skipped["rare class"] = n_rare
    probe_rows = np.flatnonzero(in_probe)
    is_test = stratified_split([strata[i] for i in probe_rows], config.test_fraction, config.seed)
    train, test = probe_rows[~is_test], probe_rows[is_test]
    if len(test) == 0 or len(train) == 0:
        raise ValueError(f"too few labelled rows in '{name}' ({len(probe_rows)}) to hold out a test split")
    return _Rows(parsed, tags, kept, dropped, usable, in_probe, train, test, skipped)


def _fit(config: ProbeConfig, rows: _Rows, x: np.ndarray) -> tuple[Any, np.ndarray, list[str]]:
    """The fitted classifier, every row's targets, and warnings worth telling (convergence, absent tags)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import MultiLabelBinarizer

    notes: list[str] = []
    clf = _make_classifier(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if config.multi_label:
            y_all = MultiLabelBinarizer(classes=rows.kept).fit_transform([t or () for t in rows.tags])
            y_train = y_all[rows.train]
            absent = np.flatnonzero(y_train.sum(axis=0) == 0)
            if len(absent):
                notes.append("tags with no positive training row (always predicted absent): "
                             f"{join_names([rows.kept[j] for j in absent])}")
            clf.fit(x[rows.train], y_train)
        else:
            y_all = np.array([p[0] if p is not None else "" for p in rows.parsed], dtype=object)
            clf.fit(x[rows.train], y_all[rows.train].astype(str))
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append(f"the logistic regression did not fully converge in {config.max_iter} iterations")
    return clf, y_all, list(dict.fromkeys(notes))


def _score(config: ProbeConfig, rows: _Rows, y_all: np.ndarray, test_probs: np.ndarray, result: ProbeResult) -> None:
    """Fill ``result``'s scores on the test rows: accuracy or mAP, macro-F1 and the per-class table."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    kept = rows.kept
    if config.multi_label:
        y_test = y_all[rows.test]
        y_pred = (test_probs >= config.threshold).astype(int)
        prec, rec, f1, _ = precision_recall_fscore_support(y_test, y_pred, average=None, zero_division=0)
        result.mean_ap, ap, result.ap_excluded = mean_average_precision(y_test, test_probs, kept)
        result.macro_f1 = float(np.mean(f1[[j for j, c in enumerate(kept) if c in ap]]))
    else:
        y_test = y_all[rows.test].astype(str)
        y_pred = np.asarray(kept, dtype=object)[np.argmax(test_probs, axis=1)].astype(str)
        prec, rec, f1, _ = precision_recall_fscore_support(y_test, y_pred, labels=kept, average=None,
                                                           zero_division=0)
        result.accuracy = float(accuracy_score(y_test, y_pred))
        result.macro_f1 = float(np.mean(f1))
        ap = {}
    n_train = Counter(t for i in rows.train for t in (rows.tags[i] or ()))
    n_test = Counter(t for i in rows.test for t in (rows.tags[i] or ()))
    result.per_class = [ClassScore(c, n_train[c], n_test[c], float(prec[j]), float(rec[j]), float(f1[j]),
                                   ap.get(c)) for j, c in enumerate(kept)]


def train_probe(config: ProbeConfig, labels: Sequence[Any], features: FeatureSet,
                progress: Progress | None = None, skipped: dict[str, int] | None = None) -> ProbeResult:
    """Train and score the probe on rows with both a label and features; predict every row with features.

    ``labels`` are raw values (parsed with :func:`parse_labels`). Raises ValueError with the label
    field named for: all labels empty, one class only, too few rows per class for a split.
    """
    config.check()
    rows = _select_rows(config, labels, features, skipped)
    if progress is not None:
        progress(0.0, f"Training a linear probe on {len(rows.train)} rows ({len(rows.kept)} classes)")
    clf, y_all, notes = _fit(config, rows, features.values)
    pred_rows = np.flatnonzero(features.ok)
    probs = np.asarray(clf.predict_proba(features.values[pred_rows]), dtype=np.float64)
    if not config.multi_label:  # columns in the order of the kept classes
        probs = probs[:, [list(clf.classes_).index(c) for c in rows.kept]]
    position = {int(r): k for k, r in enumerate(pred_rows)}
    result = ProbeResult(config=config, task="multi-label" if config.multi_label else "single-label",
                         classes=list(rows.kept), per_class=[], n_rows=len(labels), n_train=len(rows.train),
                         n_test=len(rows.test), skipped=rows.skipped, dropped_classes=rows.dropped, warnings=notes)
    _score(config, rows, y_all, probs[[position[int(r)] for r in rows.test]], result)
    split = np.full(len(pred_rows), SPLIT_UNLABELLED, dtype=object)
    split[[position[int(r)] for r in rows.train]] = SPLIT_TRAIN
    split[[position[int(r)] for r in rows.test]] = SPLIT_TEST
    split[[position[int(r)] for r in np.flatnonzero(rows.usable & ~rows.in_probe)]] = SPLIT_EXCLUDED
    result.rows, result.split, result.probabilities = pred_rows, split, probs.astype(np.float32)
    if progress is not None:
        progress(1.0, "Linear probe trained and scored")
    return result


def run_probe(config: ProbeConfig, labels: Sequence[Any], latlon=None, photos: Sequence[Any] | None = None,
              model=None, row_ids: Sequence[Any] | None = None, progress: Progress | None = None,
              is_canceled: IsCanceled | None = None, skipped: dict[str, int] | None = None) -> ProbeResult:
    """Features + probe in one call (see :func:`build_features` and :func:`train_probe`)."""
    config.check()
    parsed = parse_labels(labels, config.separator)
    if not any(p is not None for p in parsed):
        # Fail before any photo is decoded or model loaded.
        raise ValueError(f"the label field '{config.label_name}' is empty (NULL or blank) in all {len(parsed)} "
                         f"rows; choose a field with class values")

    def stage(lo: float, hi: float) -> Progress | None:
        if progress is None:
            return None
        return lambda f, msg: progress(lo + (hi - lo) * f, msg)

    features = build_features(config.features, latlon, photos, model, row_ids, config.photo_name,
                              stage(0.0, 0.7), is_canceled)
    if is_canceled is not None and is_canceled():
        raise Canceled("Canceled by the user before training")
    result = train_probe(config, labels, features, stage(0.7, 1.0), skipped)
    if features.problems:
        result.warnings.insert(0, f"{len(features.problems)} row(s) skipped for their photo: "
                                  f"{row_list(features.problems)}")
    return result
