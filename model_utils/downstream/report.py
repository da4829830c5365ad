"""Reports of a downstream linear probe: per-class and summary CSV plus a self-contained HTML page.

Split from ``downstream`` (training) so each module stays small; every file is written atomically
(temp file + rename) and never overwrites an earlier report (a free stem is chosen).
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


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


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1000px;color:#222;
padding:0 1em}h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em}
.sub{color:#666}.cards{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}
.card{border:1px solid #ddd;border-radius:8px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.6em}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #eee;padding:.25em .6em;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}.note{color:#8a5a00}svg text{font:11px sans-serif}
"""


def _bar_chart(result: ProbeResult, limit: int = 60) -> str:
    """Inline SVG: horizontal bars of the per-class score (AP for tags, F1 for classes)."""
    metric = "average precision" if result.task == "multi-label" else "F1"
    scores = [(s.label, s.average_precision if result.task == "multi-label" else s.f1) for s in result.per_class]
    scores = sorted(((lbl, v) for lbl, v in scores if v is not None), key=lambda t: (-t[1], t[0]))
    note = ""
    if len(scores) > limit:
        note = f"<p class='sub'>Showing the {limit} best of {len(scores)} classes; all are in the table.</p>"
        scores = scores[:limit]
    bar_h, label_w, width = 16, 180, 520
    height = bar_h * len(scores) + 24
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{label_w + width + 60}' height='{height}' "
             f"role='img' aria-label='per-class {metric}'>"]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + tick * width
        parts.append(f"<line x1='{x:.1f}' y1='0' x2='{x:.1f}' y2='{height - 14}' stroke='#ddd'/>"
                     f"<text x='{x:.1f}' y='{height - 2}' text-anchor='middle'>{tick:g}</text>")
    for i, (label, value) in enumerate(scores):
        y = i * bar_h
        short = label if len(label) <= 28 else label[:27] + "…"
        parts.append(f"<text x='{label_w - 6}' y='{y + 12}' text-anchor='end'>{html.escape(short)}</text>"
                     f"<rect x='{label_w}' y='{y + 2}' width='{max(value, 0.0) * width:.1f}' height='{bar_h - 4}' "
                     f"fill='#3a7bd5'><title>{html.escape(label)}: {value:.4f}</title></rect>"
                     f"<text x='{label_w + max(value, 0.0) * width + 4:.1f}' y='{y + 12}'>{value:.3f}</text>")
    parts.append("</svg>")
    return f"<h2>Per-class {metric}</h2>{note}" + "".join(parts)


def report_html(result: ProbeResult, title: str = "GeoCLIP downstream classifier") -> str:
    """A self-contained page (inline CSS and SVG, no scripts, no external files)."""
    e = html.escape
    head_name, head_value = result.headline
    cards = [(head_name, _fmt(head_value))]
    if result.task == "single-label":
        cards.append(("macro-F1", _fmt(result.macro_f1)))
    else:
        cards.append((f"macro-F1 @ p≥{result.config.threshold:g}", _fmt(result.macro_f1)))
    cards += [("classes" if result.task == "single-label" else "tags", str(len(result.classes))),
              ("train / test rows", f"{result.n_train} / {result.n_test}")]
    card_html = "".join(f"<div class='card'>{e(k)}<b>{e(v)}</b></div>" for k, v in cards)
    summary = "".join(f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in result.summary())
    multi = result.task == "multi-label"
    head_cells = ["label", "train rows", "test rows", "precision", "recall", "F1"] + (["AP"] if multi else [])
    rows = []
    for s in result.per_class:
        cells = [s.label, str(s.n_train), str(s.n_test), _fmt(s.precision), _fmt(s.recall), _fmt(s.f1)]
        if multi:
            cells.append(_fmt(s.average_precision) or "—")
        rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    notes = []
    if result.ap_excluded:
        notes.append(f"Tags without a positive test row, left out of the mAP: {e(', '.join(result.ap_excluded))}")
    if result.dropped_classes:
        notes.append(f"Classes with fewer than {result.config.min_rows_per_class} labelled rows, left out: "
                     f"{e(join_names(result.dropped_classes))}")
    skipped = ", ".join(f"{n} ({reason})" for reason, n in result.skipped.items() if n)
    if skipped:
        notes.append(f"Rows skipped: {e(skipped)}")
    notes += [e(w) for w in result.warnings]
    note_html = "".join(f"<p class='note'>{n}</p>" for n in notes)
    features = FEATURE_NAMES.get(result.config.features, result.config.features)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(title)}</h1><p class='sub'>{e(result.task)} logistic regression on {e(features)}; "
        f"label field <b>{e(result.config.label_name)}</b>; seed {result.config.seed}, "
        f"test fraction {result.config.test_fraction:g}.</p>"
        f"<div class='cards'>{card_html}</div>{note_html}{_bar_chart(result)}"
        f"<h2>Per class</h2><table><tr>{''.join(f'<th>{e(h)}</th>' for h in head_cells)}</tr>{''.join(rows)}</table>"
        f"<h2>Summary</h2><table><tr><th>metric</th><th>value</th></tr>{summary}</table>"
        "</body></html>\n"
    )


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
