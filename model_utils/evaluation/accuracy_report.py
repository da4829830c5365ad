"""The accuracy report: the GeoCLIP paper's table for a set of photos, as CSV and as one HTML file.

Pure Python (numpy + pyproj through :mod:`model_utils.geo`), so the Processing algorithms, the
demo and the tests all write the same report without Qt or QGIS.

Files written into ``folder`` (``stem`` defaults to ``accuracy``):

``accuracy.csv``  one table, columns ``threshold_km, name, share, percent, n_within, n, error_km``:
    five rows for the paper's thresholds (street 1 km ... continent 2500 km; ``share`` in 0..1,
    ``percent`` = 100 * share, ``n_within`` photos within, ``n`` photos evaluated), then the rows
    ``median_error`` and ``mean_error`` (value in ``error_km``) and ``without_ground_truth``
    (``n`` = photos left out because they have no true position). Blank cells do not apply.
``per_photo.csv`` (``<stem>_per_photo.csv`` for another stem) one row per photo:
    ``photo, photo_name, pred_lat, pred_lon, true_lat, true_lon, error_km, prob``.
``accuracy.html`` self-contained (inline CSS and SVG, no scripts, no external files): the table in
    the paper's layout next to the paper's own Im2GPS3k row, median/mean error and N, a chart of
    the share of photos within d km (log axis 0.1 ... 20,000 km), and the per-photo table.

Nothing is ever overwritten: if any of the three names is taken, all three get the first free
suffix (``accuracy_2.csv``, ``per_photo_2.csv``, ``accuracy_2.html``). Each file is written to a
hidden temp file in the same folder and renamed into place, so readers never see half a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import ACCURACY_THRESHOLDS_KM
from ..geo import geodesic_km
from ..report_html import esc, number, page, svg_open
from ..safe_files import next_free, write_texts
from .accuracy import AccuracyReport, accuracy_at_thresholds, threshold_name
from .coverage import coverage, coverage_html

__all__ = [
    "PAPER_IM2GPS3K_PERCENT",
    "PhotoResult",
    "ReportPaths",
    "photo_result",
    "write_accuracy_report",
]

# GeoCLIP (NeurIPS 2023), Table 1, Im2GPS3k: % of photos within 1 / 25 / 200 / 750 / 2500 km.
PAPER_IM2GPS3K_PERCENT: tuple[float, ...] = (14.11, 34.47, 50.65, 69.67, 83.82)

CHART_MIN_KM = 0.1
CHART_MAX_KM = 20_000.0

ACCURACY_COLUMNS = ("threshold_km", "name", "share", "percent", "n_within", "n", "error_km")
PER_PHOTO_COLUMNS = ("photo", "photo_name", "pred_lat", "pred_lon", "true_lat", "true_lon", "error_km", "prob")


@dataclass(frozen=True)
class PhotoResult:
    """One photo's top-1 guess and, when known, where it was really taken.

    ``true_lat``/``true_lon`` are None for photos without EXIF GPS; ``error_km`` is computed
    geodesically (WGS84) from the coordinates when not given.
    """

    photo: str
    pred_lat: float
    pred_lon: float
    true_lat: float | None = None
    true_lon: float | None = None
    error_km: float | None = None
    prob: float | None = None
    photo_name: str | None = None
    regions: tuple[tuple[float, float, bool | None], ...] = ()  # (level, area km², truth inside) per level

    @property
    def name(self) -> str:
        return self.photo_name or Path(self.photo).name or self.photo

    @property
    def has_truth(self) -> bool:
        return self.true_lat is not None and self.true_lon is not None


@dataclass(frozen=True)
class ReportPaths:
    """The files actually written (their names may carry a ``_2``... suffix) and the numbers in them."""

    csv: Path
    per_photo_csv: Path
    html: Path
    accuracy: AccuracyReport


def _number(value: Any) -> float | None:
    """A float, or None for missing values (None, NaN, empty strings; callers pass plain Python values)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip() in ("", "NULL"):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def photo_result(row: PhotoResult | Mapping[str, Any]) -> PhotoResult:
    """Accept a :class:`PhotoResult` or a dict (``pred_lat``/``pred_lon``, or ``lat``/``lon``)."""
    if isinstance(row, PhotoResult):
        result = row
    else:
        def first(*keys: str) -> Any:
            return next((row[k] for k in keys if k in row and row[k] is not None), None)

        pred_lat, pred_lon = _number(first("pred_lat", "lat")), _number(first("pred_lon", "lon"))
        if pred_lat is None or pred_lon is None:
            raise ValueError(f"photo {first('photo', 'path', 'photo_name')!r} has no predicted lat/lon")
        result = PhotoResult(
            photo=str(first("photo", "path", "photo_name") or ""),
            pred_lat=pred_lat, pred_lon=pred_lon,
            true_lat=_number(first("true_lat")), true_lon=_number(first("true_lon")),
            error_km=_number(first("error_km")), prob=_number(first("prob")),
            photo_name=None if first("photo_name") is None else str(first("photo_name")),
            regions=tuple(row.get("regions") or ()),
        )
    if result.has_truth and result.error_km is None:
        error = float(geodesic_km(result.true_lat, result.true_lon, result.pred_lat, result.pred_lon))
        result = PhotoResult(result.photo, result.pred_lat, result.pred_lon, result.true_lat, result.true_lon,
                             error, result.prob, result.photo_name, result.regions)
    elif not result.has_truth and result.error_km is not None:
        result = PhotoResult(result.photo, result.pred_lat, result.pred_lon, None, None, None, result.prob,
                             result.photo_name, result.regions)
    return result


def write_accuracy_report(rows: Iterable[PhotoResult | Mapping[str, Any]], folder: str | Path,
                          title: str = "GeoCLIP geolocation accuracy", stem: str = "accuracy",
                          skipped: Sequence[str] = ()) -> ReportPaths:
    """Write the accuracy CSV, the per-photo CSV and the HTML report into ``folder`` (created if needed).

    Photos without ground truth are listed but left out of every figure; ``skipped`` lines (files of the
    input folder that are not photos, by reason) are listed under their own heading. Raises ValueError when
    no photo has ground truth (there is nothing to evaluate) or a coordinate is out of range.
    """
    results = [photo_result(r) for r in rows]
    errors = np.array([r.error_km if r.has_truth else np.nan for r in results], dtype=np.float64)
    report = accuracy_at_thresholds(errors)
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, per_photo_path, html_path = _free_names(folder, stem)
    contents = {
        csv_path: _accuracy_csv(report, errors),
        per_photo_path: _per_photo_csv(results),
        html_path: _html(report, results, errors, title, csv_path.name, per_photo_path.name, skipped),
    }
    write_texts(contents)
    return ReportPaths(csv=csv_path, per_photo_csv=per_photo_path, html=html_path, accuracy=report)


# ---------------------------------------------------------------------------------------------- files
def _free_names(folder: Path, stem: str) -> tuple[Path, Path, Path]:
    """The three report files under the first suffix ('', '_2', '_3', ...) for which none exists yet."""
    per_photo_stem = "per_photo" if stem == "accuracy" else f"{stem}_per_photo"

    def names(suffix: str) -> tuple[Path, Path, Path]:
        return (folder / f"{stem}{suffix}.csv", folder / f"{per_photo_stem}{suffix}.csv",
                folder / f"{stem}{suffix}.html")

    return names(next_free("", lambda suffix: any(p.exists() for p in names(suffix))))


def _accuracy_csv(report: AccuracyReport, errors: np.ndarray) -> str:
    valid = errors[~np.isnan(errors)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(ACCURACY_COLUMNS)
    for row in report.as_rows():
        n_within = int(np.count_nonzero(valid <= row["threshold_km"]))
        writer.writerow([number(row["threshold_km"], "g"), row["name"], number(row["share"], ".10g"),
                         number(row["percent"], ".10g"), n_within, report.n, ""])
    writer.writerow(["", "median_error", "", "", "", report.n, number(report.median_km, ".4f")])
    writer.writerow(["", "mean_error", "", "", "", report.n, number(report.mean_km, ".4f")])
    writer.writerow(["", "without_ground_truth", "", "", "", report.n_ignored, ""])
    return out.getvalue()


def _per_photo_csv(results: list[PhotoResult]) -> str:
    """One row per photo; with credible regions, each level's area and whether the truth lies inside."""
    levels = sorted({level for r in results for level, _, _ in r.regions})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*PER_PHOTO_COLUMNS, *(f"{name}_{level * 100:g}" for level in levels
                                          for name in ("region_km2", "truth_inside"))])
    for r in results:
        regions = {level: (area, inside) for level, area, inside in r.regions}
        extra = [cell for level in levels for cell in (
            number(regions[level][0], ".0f") if level in regions else "",
            "" if level not in regions or regions[level][1] is None else int(regions[level][1]))]
        coordinates = [number(v, ".6f") for v in (r.pred_lat, r.pred_lon, r.true_lat, r.true_lon)]
        writer.writerow([r.photo, r.name, *coordinates, number(r.error_km, ".4f"), number(r.prob, ".6g"), *extra])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------- HTML
ACCURACY_CSS = """
tr.ref td{color:#5b6770;font-style:italic}
.summary td{text-align:left}
.photos td{font-variant-numeric:tabular-nums}
.photos td.l{max-width:22em;overflow-wrap:anywhere}
.nogps{color:#8a949c}
"""


def _fmt_km(km: float) -> str:
    if km < 10:
        return f"{km:.2f} km"
    if km < 1000:
        return f"{km:.1f} km"
    return f"{km:,.0f} km"


def _html(report: AccuracyReport, results: list[PhotoResult], errors: np.ndarray, title: str,
          csv_name: str, per_photo_name: str, skipped: Sequence[str] = ()) -> str:
    rows = report.as_rows()
    head = "".join(f'<th>{esc(r["name"].capitalize())}<br>{r["threshold_km"]:g} km</th>' for r in rows)
    ours = "".join(f'<td class="v">{r["percent"]:.2f}</td>' for r in rows)
    table = [f'<table class="accuracy"><thead><tr><th class="l">% of photos within</th>{head}</tr></thead><tbody>',
             f'<tr><td class="l">This set (N = {report.n})</td>{ours}</tr>']
    if tuple(report.thresholds_km) == ACCURACY_THRESHOLDS_KM:
        paper = "".join(f"<td>{p:.2f}</td>" for p in PAPER_IM2GPS3K_PERCENT)
        table.append(f'<tr class="ref"><td class="l">Reference: GeoCLIP paper, Im2GPS3k (N = 2,997)</td>{paper}</tr>')
    table.append("</tbody></table>")
    summary = (
        '<table class="summary"><tbody>'
        f"<tr><th class=\"l\">Photos evaluated (N)</th><td>{report.n}</td></tr>"
        f"<tr><th class=\"l\">Median error</th><td>{esc(_fmt_km(report.median_km))}</td></tr>"
        f"<tr><th class=\"l\">Mean error</th><td>{esc(_fmt_km(report.mean_km))}</td></tr>"
        f"<tr><th class=\"l\">Photos without ground truth (left out)</th><td>{report.n_ignored}</td></tr>"
        "</tbody></table>"
    )
    generated = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    meta = (f"Generated {generated} · top-1 predictions against the true position (EXIF GPS or given coordinates) "
            f"· distances geodesic on the WGS84 ellipsoid · data: {esc(csv_name)}, {esc(per_photo_name)}")
    return page(title, meta, [
        "<h2>Accuracy at the paper's thresholds</h2>",
        *table,
        '<p class="note">Share of photos whose top-1 prediction lies within each distance of the true position '
        "(an error exactly on a threshold counts as within). The reference row is the GeoCLIP paper's result on "
        "the Im2GPS3k benchmark, for scale only: a different set of photos gives different numbers.</p>",
        summary,
        "<h2>Accuracy against distance</h2>",
        _svg_chart(errors[~np.isnan(errors)], report),
        '<p class="note">Cumulative share of photos whose error is at most d km (log scale). Dots mark this '
        "set at the five thresholds; hollow diamonds the paper's Im2GPS3k values.</p>",
        coverage_html(coverage([r.regions for r in results])),
        "<h2>Per photo</h2>",
        _photo_table(results),
        *(["<h2>Files not geolocated</h2>", "<ul>", *(f"<li>{esc(line)}</li>" for line in skipped), "</ul>"]
          if skipped else []),
    ], extra_css=ACCURACY_CSS)


def _photo_table(results: list[PhotoResult]) -> str:
    rows = []
    for i, r in enumerate(results, start=1):
        if r.has_truth:
            truth = f"<td>{r.true_lat:.5f}</td><td>{r.true_lon:.5f}</td>"
            error = f"<td>{r.error_km:,.2f}</td><td class=\"l\">{esc(_closest_threshold(r.error_km))}</td>"
        else:
            truth = '<td class="nogps" colspan="2">no ground truth</td>'
            error = '<td class="nogps">–</td><td class="l nogps">not evaluated</td>'
        prob = "–" if r.prob is None else f"{r.prob:.4f}"
        rows.append(f'<tr><td>{i}</td><td class="l" title="{esc(r.photo)}">{esc(r.name)}</td>'
                    f"<td>{r.pred_lat:.5f}</td><td>{r.pred_lon:.5f}</td>{truth}{error}<td>{prob}</td></tr>")
    return ('<table class="photos"><thead><tr><th>#</th><th class="l">Photo</th><th>Pred. lat</th>'
            "<th>Pred. lon</th><th>True lat</th><th>True lon</th><th>Error (km)</th><th class=\"l\">Within</th>"
            "<th>Top-1 prob.</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _closest_threshold(error_km: float) -> str:
    for t in ACCURACY_THRESHOLDS_KM:
        if error_km <= t:
            return f"{threshold_name(t)} ({t:g} km)"
    return f"beyond {ACCURACY_THRESHOLDS_KM[-1]:g} km"


@dataclass(frozen=True)
class _Frame:
    """The accuracy chart's plot area: a log distance axis across, the share of photos up."""

    width: int = 760
    height: int = 380
    left: int = 64
    right: int = 24
    top: int = 44
    bottom: int = 56

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom

    def x(self, km: float) -> float:
        lo, hi = math.log10(CHART_MIN_KM), math.log10(CHART_MAX_KM)
        km = min(max(km, CHART_MIN_KM), CHART_MAX_KM)
        return self.left + (math.log10(km) - lo) / (hi - lo) * self.plot_w

    def y(self, share: float) -> float:
        return self.top + (1.0 - share) * self.plot_h


def _axes(f: _Frame, thresholds: tuple[float, ...]) -> list[str]:
    """Plot area, share grid, distance decades, axis titles and the paper's thresholds as dashed lines."""
    out = [f'<rect x="{f.left}" y="{f.top}" width="{f.plot_w}" height="{f.plot_h}" fill="#fbfcfd" stroke="#aab4bc"/>']
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = f.y(share)
        out.append(f'<line x1="{f.left}" y1="{yy:.1f}" x2="{f.left + f.plot_w}" y2="{yy:.1f}" stroke="#e3e8ec"/>')
        out.append(f'<text x="{f.left - 8}" y="{yy + 4:.1f}" text-anchor="end" fill="#5b6770">'
                   f"{share * 100:.0f}%</text>")
    bottom = f.top + f.plot_h
    for exp in range(-1, 5):
        km, xx = 10.0 ** exp, f.x(10.0 ** exp)
        out.append(f'<line x1="{xx:.1f}" y1="{bottom}" x2="{xx:.1f}" y2="{bottom + 5}" stroke="#5b6770"/>')
        out.append(f'<text x="{xx:.1f}" y="{bottom + 19}" text-anchor="middle" fill="#5b6770">{km:,g}</text>')
    out.append(f'<text x="{f.left + f.plot_w / 2:.1f}" y="{f.height - 12}" text-anchor="middle" fill="#1d2329">'
               "Distance from the true position, d (km, log scale)</text>")
    out.append(f'<text transform="translate(16 {f.top + f.plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
               'fill="#1d2329">Photos within d</text>')
    for t in thresholds:
        xx = f.x(t)
        out.append(f'<line x1="{xx:.1f}" y1="{f.top}" x2="{xx:.1f}" y2="{bottom}" stroke="#c2a25a" '
                   'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{xx:.1f}" y="{f.top - 20}" text-anchor="middle" fill="#7a6328">'
                   f"{esc(threshold_name(t).capitalize())}</text>")
        out.append(f'<text x="{xx:.1f}" y="{f.top - 7}" text-anchor="middle" fill="#7a6328">{t:,g} km</text>')
    return out


def _curve(f: _Frame, errors: np.ndarray) -> str:
    """The empirical cumulative share as a step line: flat between errors, rising by 1/n at each one."""
    ordered = np.sort(errors)
    n = ordered.size
    points = [f"M{f.x(CHART_MIN_KM):.1f},{f.y(float(np.count_nonzero(ordered <= CHART_MIN_KM)) / n):.1f}"]
    for value in np.unique(ordered[(ordered > CHART_MIN_KM) & (ordered <= CHART_MAX_KM)]):
        points.append(f"H{f.x(float(value)):.1f}V{f.y(float(np.count_nonzero(ordered <= value)) / n):.1f}")
    points.append(f"H{f.x(CHART_MAX_KM):.1f}")
    return f'<path class="cdf" d="{"".join(points)}" fill="none" stroke="#1f6fb2" stroke-width="2.2"/>'


def _marks(f: _Frame, report: AccuracyReport, paper: bool) -> list[str]:
    """This set's share at each threshold (dots), the paper's (hollow diamonds), and the legend."""
    out = []
    if paper:
        for t, p in zip(report.thresholds_km, PAPER_IM2GPS3K_PERCENT):
            xx, yy = f.x(t), f.y(p / 100.0)
            out.append(f'<path d="M{xx:.1f},{yy - 5:.1f}l5,5l-5,5l-5,-5z" fill="#fff" stroke="#8a949c" '
                       f'stroke-width="1.5"><title>Paper, Im2GPS3k: {p:.2f}% within {t:g} km</title></path>')
    for t, s in zip(report.thresholds_km, report.share_within):
        xx, yy = f.x(t), f.y(s)
        out.append(f'<circle cx="{xx:.1f}" cy="{yy:.1f}" r="4.5" fill="#1f6fb2"><title>This set: '
                   f"{100 * s:.2f}% within {t:g} km</title></circle>")
        out.append(f'<text x="{xx + 7:.1f}" y="{yy - 7:.1f}" fill="#1f6fb2" font-weight="600">{100 * s:.1f}%</text>')
    lx, ly = f.left + f.plot_w - 282, f.top + f.plot_h - 52  # lower right, where a cumulative curve rarely passes
    out.append(f'<rect x="{lx - 8}" y="{ly - 12}" width="276" height="44" fill="#fff" fill-opacity="0.9" '
               'stroke="#d5dbe0"/>')
    out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 22}" y2="{ly}" stroke="#1f6fb2" stroke-width="2.2"/>')
    out.append(f'<text x="{lx + 28}" y="{ly + 4}" fill="#1d2329">This set (N = {report.n})</text>')
    if paper:
        out.append(f'<path d="M{lx + 11},{ly + 13}l5,5l-5,5l-5,-5z" fill="#fff" stroke="#8a949c" stroke-width="1.5"/>')
        out.append(f'<text x="{lx + 28}" y="{ly + 22}" fill="#1d2329">GeoCLIP paper, Im2GPS3k (reference)</text>')
    return out


def _svg_chart(errors: np.ndarray, report: AccuracyReport) -> str:
    """Empirical cumulative share of photos within d km, as a step line on a log distance axis."""
    frame = _Frame()
    description = (f"Cumulative share of the {report.n} evaluated photos whose error is at most d km, for d from "
                   f"{CHART_MIN_KM:g} to {CHART_MAX_KM:,.0f} km on a log scale.")
    paper = tuple(report.thresholds_km) == ACCURACY_THRESHOLDS_KM
    return "\n".join([svg_open(frame.width, frame.height, "Share of photos within a distance", description),
                      *_axes(frame, tuple(report.thresholds_km)), _curve(frame, errors),
                      *_marks(frame, report, paper), "</svg>"])
