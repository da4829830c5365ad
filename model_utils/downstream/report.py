"""Reports of a downstream linear probe: per-class and summary CSV plus a self-contained HTML page.

Split from ``downstream`` (training) so each module stays small; every file is written atomically
(temp file + rename) and never overwrites an earlier report (a free stem is chosen).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..report_html import esc, number, page, svg_open, table
from ..safe_files import free_stem, write_texts
from .features import FEATURE_NAMES
from .labels import join_names
from .probe import ProbeResult


# ----------------------------------------------------------------------------------- reports
@dataclass(frozen=True)
class ReportPaths:
    html: Path
    classes_csv: Path
    summary_csv: Path


def _fmt(value: Any) -> str:
    """Scores with four decimals, counts as they are, nothing for a missing value."""
    return number(value, ".4f") if isinstance(value, float) or value is None else str(value)


def classes_csv_text(result: ProbeResult) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["label", "n_train", "n_test", "precision", "recall", "f1"]
    if result.task == "multi-label":
        header.append("average_precision")
    writer.writerow(header)
    for s in result.per_class:
        row = [s.label, s.n_train, s.n_test, _fmt(s.precision), _fmt(s.recall), _fmt(s.f1)]
        if result.task == "multi-label":
            row.append(_fmt(s.average_precision))
        writer.writerow(row)
    return buf.getvalue()


def summary_csv_text(result: ProbeResult) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["metric", "value"])
    for key, value in result.summary():
        writer.writerow([key, _fmt(value)])
    return buf.getvalue()


CARDS_CSS = """
.cards{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}
.card{border:1px solid #d5dbe0;border-radius:8px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.6em}table.classes{width:100%}svg text{font:11px sans-serif}
"""


def _bar_chart(result: ProbeResult, limit: int = 60) -> str:
    """Inline SVG: horizontal bars of the per-class score (AP for tags, F1 for classes)."""
    metric = "average precision" if result.task == "multi-label" else "F1"
    scores = [(s.label, s.average_precision if result.task == "multi-label" else s.f1) for s in result.per_class]
    scores = sorted(((lbl, v) for lbl, v in scores if v is not None), key=lambda t: (-t[1], t[0]))
    note = ""
    if len(scores) > limit:
        note = f'<p class="note">Showing the {limit} best of {len(scores)} classes; all are in the table.</p>'
        scores = scores[:limit]
    bar_h, label_w, width = 16, 180, 520
    height = bar_h * len(scores) + 24
    parts = [svg_open(label_w + width + 60, height, f"Per-class {metric}", css_class="bars")]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + tick * width
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 14}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{height - 2}" text-anchor="middle">{tick:g}</text>')
    for i, (label, value) in enumerate(scores):
        y = i * bar_h
        short = label if len(label) <= 28 else label[:27] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{esc(short)}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{max(value, 0.0) * width:.1f}" height="{bar_h - 4}" '
                     f'fill="#3a7bd5"><title>{esc(label)}: {value:.4f}</title></rect>'
                     f'<text x="{label_w + max(value, 0.0) * width + 4:.1f}" y="{y + 12}">{value:.3f}</text>')
    parts.append("</svg>")
    return f"<h2>Per-class {metric}</h2>{note}" + "".join(parts)


def _notes(result: ProbeResult) -> list[str]:
    """What the reader should know about the rows and classes left out (escaped HTML)."""
    notes = []
    if result.ap_excluded:
        notes.append(f"Tags without a positive test row, left out of the mAP: {esc(', '.join(result.ap_excluded))}")
    if result.dropped_classes:
        notes.append(f"Classes with fewer than {result.config.min_rows_per_class} labelled rows, left out: "
                     f"{esc(join_names(result.dropped_classes))}")
    skipped = ", ".join(f"{n} ({reason})" for reason, n in result.skipped.items() if n)
    if skipped:
        notes.append(f"Rows skipped: {esc(skipped)}")
    return notes + [esc(w) for w in result.warnings]


def report_html(result: ProbeResult, title: str = "GeoCLIP downstream classifier") -> str:
    """A self-contained page (inline CSS and SVG, no scripts, no external files)."""
    head_name, head_value = result.headline
    multi = result.task == "multi-label"
    cards = [(head_name, _fmt(head_value)),
             (f"macro-F1 @ p≥{result.config.threshold:g}" if multi else "macro-F1", _fmt(result.macro_f1)),
             ("tags" if multi else "classes", str(len(result.classes))),
             ("train / test rows", f"{result.n_train} / {result.n_test}")]
    card_html = "".join(f'<div class="card">{esc(k)}<b>{esc(v)}</b></div>' for k, v in cards)
    head_cells = ["label", "train rows", "test rows", "precision", "recall", "F1"] + (["AP"] if multi else [])
    rows = [[esc(c) for c in (s.label, s.n_train, s.n_test, _fmt(s.precision), _fmt(s.recall), _fmt(s.f1),
                              *([_fmt(s.average_precision) or "—"] if multi else []))] for s in result.per_class]
    features = FEATURE_NAMES.get(result.config.features, result.config.features)
    meta = (f"{esc(result.task)} logistic regression on {esc(features)}; label field "
            f"<b>{esc(result.config.label_name)}</b>; seed {result.config.seed}, test fraction "
            f"{result.config.test_fraction:g}.")
    return page(title, meta, [
        f'<div class="cards">{card_html}</div>',
        *(f'<p class="warn">{note}</p>' for note in _notes(result)),
        _bar_chart(result),
        "<h2>Per class</h2>", table(head_cells, rows, "classes"),
        "<h2>Summary</h2>", table(["metric", "value"], [[esc(k), esc(_fmt(v))] for k, v in result.summary()]),
    ], extra_css=CARDS_CSS)


def write_reports(result: ProbeResult, folder: str | os.PathLike, stem: str | None = None) -> ReportPaths:
    """Write ``<stem>_classes.csv``, ``<stem>_summary.csv`` and ``<stem>.html``; never overwrite."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffixes = ("_classes.csv", "_summary.csv", ".html")
    base = stem or f"downstream_{result.config.features.replace('+', '_')}"
    base = free_stem(folder, base, suffixes)
    paths = ReportPaths(folder / f"{base}.html", folder / f"{base}_classes.csv", folder / f"{base}_summary.csv")
    texts = [(paths.classes_csv, classes_csv_text(result)), (paths.summary_csv, summary_csv_text(result)),
             (paths.html, report_html(result))]
    write_texts(dict(texts))  # all three or none
    return paths
