"""The reference collection's reports, as self-contained HTML (``report_html``): what a build did and how much the
collection helps (its leave-one-out fit), and a geolocation run's GeoCLIP-alone and fused answers side by side.

Pure Python: the QGIS algorithms, scripts and tests write the same pages. Nothing is overwritten: a taken name
gets the first free suffix (``fit_2.html``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import ACCURACY_THRESHOLDS_KM
from ..evaluation.accuracy import AccuracyReport, accuracy_at_thresholds, threshold_name
from ..geo import geodesic_km
from ..report_html import esc, number, page, table
from ..safe_files import free_stem, write_texts

CITY_KM = 25.0  # the headline's threshold: "the photo's own city"


def _share(report: AccuracyReport | None, km: float = CITY_KM) -> float | None:
    if report is None or km not in report.thresholds_km:
        return None
    return report.share_within[report.thresholds_km.index(km)]


def fit_headline(fit) -> str:
    """One line for the log: how much the collection helps, on its own photos (a FitResult)."""
    alone, fused = _share(fit.geoclip), _share(fit.fused)
    line = (f"On its own {fit.n_queries} photos (leave-one-out), top-1 within {CITY_KM:g} km: GeoCLIP alone "
            f"{100 * alone:.1f}%, with the collection {100 * fused:.1f}%")
    away = _share(fit.place_left_out)
    if away is not None:
        line += f"; photos of places it does not cover {100 * away:.1f}% (should stay near GeoCLIP alone)"
    return line + "."


def accuracy_rows(named: Sequence[tuple[str, AccuracyReport | None]]) -> str:
    """The paper's table, one row per (name, report): % within each threshold, median error, N."""
    head = ["", *(f"{threshold_name(t).capitalize()}<br>{t:g} km" for t in ACCURACY_THRESHOLDS_KM), "Median", "N"]
    rows = [[esc(name), *(f"{100 * s:.1f}" for s in rep.share_within), esc(f"{rep.median_km:,.0f} km"), str(rep.n)]
            for name, rep in named if rep is not None]
    return table(head, rows, "accuracy")


def write_fit_report(built, folder: str | Path, title: str = "Reference collection") -> Path:
    """``folder``/fit.html for a BuildReport: the photos used and left out (by reason) and the fit's accuracy
    table (GeoCLIP alone, fused, fused with the own place left out) with what it means."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{free_stem(folder, 'fit', ('.html',))}.html"
    fit = built.fit
    sections = ["<h2>How much does the collection help?</h2>"]
    if fit is None:
        sections.append(f'<p class="warn">Not fitted: {esc(built.fit_error or "no fit")}</p>')
    else:
        sections += [f"<p>{esc(fit_headline(fit))}</p>",
                     accuracy_rows([("GeoCLIP alone", fit.geoclip), ("Fused (leave-one-out)", fit.fused),
                                    (f"Fused, own {fit.place_km:g} km left out", fit.place_left_out)]),
                     '<p class="note">% of the collection\'s own photos whose top-1 guess lies within each distance '
                     "of where they were taken. <i>GeoCLIP alone</i>: without the collection. <i>Fused</i>: each photo "
                     "geolocated against all the others, as a new photo of a place the collection covers would be. "
                     f"<i>Own {fit.place_km:g} km left out</i>: against the photos farther away only, as a photo of a "
                     "place it does not cover; it should stay near GeoCLIP alone (lower: the collection's photos "
                     "look alike across places and pull photos towards its own).</p>",
                     f"<pre>{esc(fit.table())}</pre>"]
    sections += ["<h2>Photos</h2>", _build_summary(built)]
    meta = (f"Generated {dt.datetime.now():%Y-%m-%d %H:%M} · {len(built.collection)} photos from "
            f"{esc(built.source)} · index {esc(built.index)}")
    write_texts({path: page(title, meta, sections)})
    return path


def _build_summary(built) -> str:
    rows = [["Photos in the collection", str(len(built.collection))], ["Embedded now", str(built.embedded)],
            ["Taken from the index (not embedded again)", str(built.reused)],
            ["Without a position (left out)", str(len(built.without_position))],
            ["Unreadable (left out)", str(len(built.failed))], ["Duplicates (left out)", str(len(built.duplicates))]]
    left = [(p, "no position: no EXIF GPS and no coordinates") for p in built.without_position]
    left += list(built.failed) + [(p, f"same content as {kept}") for p, kept in built.duplicates]
    out = table(["", ""], [[esc(a), esc(b)] for a, b in rows], "summary")
    if left:
        out += "<h2>Left out</h2>" + table(["Photo", "Reason"], [[esc(p), esc(r)] for p, r in left], left=2)
    return out


# ---------------------------------------------------------------------------------------------- side by side
@dataclass(frozen=True)
class SideBySide:
    """One photo's GeoCLIP-alone and fused top-1, the share moved to the references, its best match."""

    photo: str
    name: str
    geoclip: tuple[float, float]
    fused: tuple[float, float]
    weight: float
    best_match: str = ""
    best_similarity: float | None = None
    truth: tuple[float, float] | None = None

    def errors_km(self) -> tuple[float | None, float | None]:
        if self.truth is None:
            return None, None
        return tuple(float(geodesic_km(*self.truth, *guess)) for guess in (self.geoclip, self.fused))


def side_by_side(pred, name: str) -> SideBySide:
    """A FusedPrediction as a report row."""
    alone = pred.geoclip
    best = pred.matches[0] if pred.matches else None
    return SideBySide(pred.source, name, (float(alone.lat[0]), float(alone.lon[0])),
                      (float(pred.lat[0]), float(pred.lon[0])), float(pred.weight),
                      Path(best.path).name if best else "", best.similarity if best else None,
                      None if pred.gps is None else (float(pred.gps[0]), float(pred.gps[1])))


def write_comparison_report(rows: Iterable[SideBySide], folder: str | Path,
                            title: str = "GeoCLIP alone and with reference photos") -> Path:
    """``folder``/references.html (+ references.csv): per photo both top-1s (and with a true position both
    errors), and the accuracy table for both."""
    rows = list(rows)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = free_stem(folder, "references", (".html", ".csv"))
    errors = np.array([r.errors_km() if r.truth else (np.nan, np.nan) for r in rows], dtype=float).reshape(-1, 2)
    sections = []
    if np.isfinite(errors[:, 0]).any():
        sections += ["<h2>Accuracy, both ways</h2>",
                     accuracy_rows([("GeoCLIP alone", accuracy_at_thresholds(errors[:, 0])),
                                    ("Fused with the references", accuracy_at_thresholds(errors[:, 1]))]),
                     '<p class="note">% of the photos with a true position (EXIF GPS) whose top-1 guess lies within '
                     "each distance of it.</p>"]
    sections += ["<h2>Per photo</h2>", _photo_rows(rows, errors),
                 '<p class="note">Moved: the share of the probability given to the matched references (about 0: '
                 "the answer is GeoCLIP's own). Best match: the most similar reference photo and its cosine "
                 "similarity.</p>"]
    meta = f"Generated {dt.datetime.now():%Y-%m-%d %H:%M} · {len(rows)} photos · data: {esc(stem)}.csv"
    write_texts({folder / f"{stem}.html": page(title, meta, sections), folder / f"{stem}.csv": _csv(rows, errors)})
    return folder / f"{stem}.html"


def _photo_rows(rows: list[SideBySide], errors: np.ndarray) -> str:
    head = ["Photo", "GeoCLIP alone", "Error (km)", "Fused", "Error (km)", "Moved", "Best match", "Similarity"]
    body = [[esc(r.name), f"{r.geoclip[0]:.4f}, {r.geoclip[1]:.4f}", number(e[0], ",.1f"),
             f"{r.fused[0]:.4f}, {r.fused[1]:.4f}", number(e[1], ",.1f"), f"{100 * r.weight:.1f}%", esc(r.best_match),
             number(r.best_similarity, ".4f")] for r, e in zip(rows, errors)]
    return table(head, body, "photos")


def _csv(rows: list[SideBySide], errors: np.ndarray) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["photo", "geoclip_lat", "geoclip_lon", "geoclip_error_km", "fused_lat", "fused_lon",
                     "fused_error_km", "weight", "best_match", "best_similarity", "true_lat", "true_lon"])
    for r, e in zip(rows, errors):
        writer.writerow([r.photo, *r.geoclip, number(e[0], ".4f"), *r.fused, number(e[1], ".4f"),
                         f"{r.weight:.6g}", r.best_match, number(r.best_similarity, ".6f"),
                         *(r.truth or ("", ""))])
    return out.getvalue()
