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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Canceled
from .features import FEATURE_KINDS, FeatureSet, build_features, cell_text, row_list

Progress = Callable[[float, str], None]

SPLIT_TRAIN, SPLIT_TEST, SPLIT_UNLABELLED, SPLIT_EXCLUDED = "train", "test", "unlabelled", "excluded"
_LISTED = 5  # rows / classes named in a message before "..."


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


# ----------------------------------------------------------------------------------- training
def join_names(items: Sequence[str]) -> str:
    items = list(items)
    listed = ", ".join(repr(s) for s in items[:_LISTED])
    return listed + (f", … ({len(items)} in all)" if len(items) > _LISTED else "")


def _make_classifier(config: ProbeConfig):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = LogisticRegression(C=config.c, max_iter=config.max_iter, random_state=config.seed)
    head = OneVsRestClassifier(logistic) if config.multi_label else logistic
    # lat/lon in degrees span very different ranges: standardise them; embeddings are already unit length.
    return make_pipeline(StandardScaler(), head) if config.features == "latlon" else make_pipeline(head)


def train_probe(config: ProbeConfig, labels: Sequence[Any], features: FeatureSet,
                progress: Progress | None = None, skipped: dict[str, int] | None = None) -> ProbeResult:
    """Train and score the probe on rows with both a label and features; predict every row with features.

    ``labels`` are raw values (parsed with :func:`parse_labels`). Raises ValueError with the label
    field named for: all labels empty, one class only, too few rows per class for a split.
    """
    config.check()
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    n = len(labels)
    if len(features.values) != n:
        raise ValueError(f"{n} labels but {len(features.values)} feature rows")
    name = config.label_name
    parsed = parse_labels(labels, config.separator)
    skipped = dict(skipped or {})
    has_label = np.array([p is not None for p in parsed], dtype=bool)
    n_empty = int((~has_label).sum())
    if n_empty:
        skipped["empty label"] = skipped.get("empty label", 0) + n_empty
    if not has_label.any():
        raise ValueError(f"the label field '{name}' is empty (NULL or blank) in all {n} rows; "
                         f"choose a field with class values")
    n_bad_features = int((~features.ok).sum())
    if n_bad_features:
        skipped["unreadable photo"] = skipped.get("unreadable photo", 0) + n_bad_features
    usable = has_label & features.ok
    if not usable.any():
        raise ValueError(f"no row has both a label in '{name}' and usable features "
                         f"({row_list(features.problems)})")

    counts = Counter(t for i in np.flatnonzero(usable) for t in parsed[i])
    if len(counts) < 2:
        only = next(iter(counts))
        raise ValueError(f"the label field '{name}' has only one class ('{only}') in its {int(usable.sum())} "
                         f"labelled rows; a classifier needs at least two classes")
    kept = sorted(c for c, k in counts.items() if k >= config.min_rows_per_class)
    dropped = sorted((c for c, k in counts.items() if k < config.min_rows_per_class), key=lambda c: (counts[c], c))
    if len(kept) < 2:
        raise ValueError(f"too few rows per class in '{name}' to split into training and test rows: "
                         f"{len(kept)} of {len(counts)} classes have at least {config.min_rows_per_class} "
                         f"labelled rows (rare ones: {join_names(dropped)}); a probe needs at least two such classes")
    kept_set = set(kept)
    if config.multi_label:
        rows_tags = [tuple(t for t in p if t in kept_set) if p is not None else None for p in parsed]
        # Rows whose tags are all rare stay in as all-negative rows: that is information too.
        in_probe = usable.copy()
        strata = [min(t, key=lambda s: (counts[s], s)) if t else "" for t in rows_tags]
    else:
        rows_tags = parsed
        in_probe = usable & np.array([p is not None and p[0] in kept_set for p in parsed], dtype=bool)
        strata = [p[0] if p is not None else "" for p in parsed]
    n_rare = int((usable & ~in_probe).sum())
    if n_rare:
        skipped["rare class"] = n_rare

    probe_rows = np.flatnonzero(in_probe)
    is_test_local = stratified_split([strata[i] for i in probe_rows], config.test_fraction, config.seed)
    train_rows, test_rows = probe_rows[~is_test_local], probe_rows[is_test_local]
    if len(test_rows) == 0 or len(train_rows) == 0:
        raise ValueError(f"too few labelled rows in '{name}' ({len(probe_rows)}) to hold out a test split")

    x = features.values
    warn_msgs: list[str] = []
    if progress is not None:
        progress(0.0, f"Training a linear probe on {len(train_rows)} rows ({len(kept)} classes)")
    clf = _make_classifier(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if config.multi_label:
            binarizer = MultiLabelBinarizer(classes=kept)
            y_all = binarizer.fit_transform([rows_tags[i] or () for i in range(n)])
            y_train = y_all[train_rows]
            if (y_train.sum(axis=0) == 0).any():
                missing = [kept[j] for j in np.flatnonzero(y_train.sum(axis=0) == 0)]
                warn_msgs.append(f"tags with no positive training row (always predicted absent): {join_names(missing)}")
            clf.fit(x[train_rows], y_train)
        else:
            y_all = np.array([p[0] if p is not None else "" for p in parsed], dtype=object)
            clf.fit(x[train_rows], y_all[train_rows].astype(str))
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            warn_msgs.append(f"the logistic regression did not fully converge in {config.max_iter} iterations")
    warn_msgs = list(dict.fromkeys(warn_msgs))

    pred_rows = np.flatnonzero(features.ok)
    probs = np.asarray(clf.predict_proba(x[pred_rows]), dtype=np.float64)
    if not config.multi_label:
        order = [list(clf.classes_).index(c) for c in kept]
        probs = probs[:, order]
    position = {int(r): k for k, r in enumerate(pred_rows)}
    test_probs = probs[[position[int(r)] for r in test_rows]]
    n_train_per = Counter(t for i in train_rows for t in (rows_tags[i] or ()))
    n_test_per = Counter(t for i in test_rows for t in (rows_tags[i] or ()))

    result = ProbeResult(config=config, task="multi-label" if config.multi_label else "single-label",
                         classes=list(kept), per_class=[], n_rows=n, n_train=len(train_rows), n_test=len(test_rows),
                         skipped=skipped, dropped_classes=dropped, warnings=warn_msgs)
    if config.multi_label:
        y_test = y_all[test_rows]
        y_pred = (test_probs >= config.threshold).astype(int)
        prec, rec, f1, _ = precision_recall_fscore_support(y_test, y_pred, average=None, zero_division=0)
        result.mean_ap, ap, result.ap_excluded = mean_average_precision(y_test, test_probs, kept)
        scored = [j for j, c in enumerate(kept) if c in ap]
        result.macro_f1 = float(np.mean(f1[scored]))
    else:
        y_test = y_all[test_rows].astype(str)
        y_pred = np.asarray(kept, dtype=object)[np.argmax(test_probs, axis=1)].astype(str)
        prec, rec, f1, _ = precision_recall_fscore_support(y_test, y_pred, labels=kept, average=None,
                                                           zero_division=0)
        result.accuracy = float(accuracy_score(y_test, y_pred))
        result.macro_f1 = float(np.mean(f1))
        ap = {}
    result.per_class = [ClassScore(c, n_train_per[c], n_test_per[c], float(prec[j]), float(rec[j]), float(f1[j]),
                                   ap.get(c)) for j, c in enumerate(kept)]

    split = np.full(len(pred_rows), SPLIT_UNLABELLED, dtype=object)
    split[[position[int(r)] for r in train_rows]] = SPLIT_TRAIN
    split[[position[int(r)] for r in test_rows]] = SPLIT_TEST
    excluded_rows = [position[int(r)] for r in np.flatnonzero(usable & ~in_probe)]
    split[excluded_rows] = SPLIT_EXCLUDED
    result.rows, result.split, result.probabilities = pred_rows, split, probs.astype(np.float32)
    if progress is not None:
        progress(1.0, "Linear probe trained and scored")
    return result


def run_probe(config: ProbeConfig, labels: Sequence[Any], latlon=None, photos: Sequence[Any] | None = None,
              model=None, row_ids: Sequence[Any] | None = None, progress: Progress | None = None,
              is_canceled: Callable[[], bool] | None = None, skipped: dict[str, int] | None = None) -> ProbeResult:
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
