"""A photo run with a reference collection: the predictions come from ``model_utils.reference``'s
ReferenceGeolocator (GeoCLIP fused with the matched reference photos), go through the same analysis as GeoCLIP's
own, and add the matched references (points and lines) and a report of GeoCLIP alone and fused side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingException

from .. import definitions as d
from ..io import run_layout


def reference_index(alg, parameters, context, regional) -> str | None:
    """The REFERENCES parameter as the index file it points at (None: not given); refused here when it holds
    no collection or comes with a regional gallery."""
    given = alg.parameterAsFile(parameters, d.REFERENCES, context) if alg.parameterDefinition(d.REFERENCES) else ""
    if not given:
        return None
    from model_utils.reference.index import CollectionError, find_index

    if regional is not None:
        raise QgsProcessingException("Reference photos work with GeoCLIP's worldwide gallery: choose that gallery, "
                                     "or leave 'Reference photos' empty for a regional run.")
    try:
        return str(find_index(given))
    except CollectionError as exc:
        raise QgsProcessingException(str(exc)) from exc


@dataclass
class ReferenceRun:
    """A run's geolocator and what it gathers per photo: (fused prediction, label) rows and report rows."""

    geolocator: Any
    rows: list = field(default_factory=list)
    sides: list = field(default_factory=list)

    def predictions(self, items, top_k: int, batch: int, progress, is_canceled):
        return self.geolocator.iter_predict(items, top_k=top_k, batch_size=batch, progress=progress,
                                            is_canceled=is_canceled)

    def add(self, analysis, label: str, feedback) -> None:
        """One geolocated photo's matches and its side-by-side row, with a log line saying what moved."""
        from model_utils.reference.report import side_by_side

        pred = analysis.prediction
        row = side_by_side(pred, label)
        self.rows.append((pred, label))
        self.sides.append(row)
        match = f"; best match {row.best_match} (similarity {row.best_similarity:.4f})" if row.best_match else ""
        feedback.pushInfo(f"{label}: GeoCLIP alone {row.geoclip[0]:.4f}, {row.geoclip[1]:.4f}; "
                          f"{100 * row.weight:.1f}% of the probability moved to the references{match}")

    def finish(self, points_path: Path, work: Path, feedback) -> dict:
        """The matches' layers in the run's GeoPackage and the side-by-side report; what ``outputs`` loads."""
        from model_utils.reference.report import write_comparison_report

        from ..io.reference_outputs import write_matches

        n = write_matches(points_path, self.rows)
        report = write_comparison_report(self.sides, work / "report")
        feedback.pushInfo(f"{n} matched reference photo(s) of {len(self.rows)} photo(s); GeoCLIP alone and fused "
                          f"side by side: {report.name}")
        return {"matches": True, "reference_report": report.name}


def reference_run(model, index: str, feedback) -> ReferenceRun:
    """The collection loaded and checked against the model in use, its fusion ready (fitted now if it has
    none: a collection from another tool), and said in the log."""
    from model_utils.reference.geolocator import ReferenceGeolocator
    from model_utils.reference.report import fit_headline

    geolocator = ReferenceGeolocator(model, index)
    geolocator.check_model()
    fitted_before = bool(geolocator.collection.fit)
    params = geolocator.params
    feedback.pushInfo(f"Reference photos: {len(geolocator.collection)} from {index}"
                      + ("" if fitted_before else " (fitted now: it had no fit for its photos)")
                      + f"; references get half the probability at similarity {params.threshold:.4f}.")
    if geolocator.fit is not None:
        feedback.pushInfo(fit_headline(geolocator.fit))
    return ReferenceRun(geolocator)


def reference_outputs(result: dict, final: Path, points: str) -> dict:
    """The algorithm's MATCHES and REFERENCE_REPORT outputs (empty without references)."""
    if not result.get("matches"):
        return {}
    return {d.MATCHES: f"{points}|layername={run_layout.LAYER_MATCHES}", d.REFERENCE_REPORT: str(final / "report" /
                                                                           result["reference_report"])}
