"""``geoclip:buildreferences``: the analyst's own geotagged photos -> a reference collection folder (the index,
a layer of the photos and of what was left out, the fit report).

The source is frozen into plain data on the main thread (a folder or table path as it is; a layer's features as
(photo path, lat, lon) in WGS84), then ``model_utils.reference.build_collection`` does everything else: only
photos it has not embedded before go through the backbone, and the leave-one-out fit says how much the
collection helps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
)

from ...compat import FILE_FOLDER, FLAG_ADVANCED, SOURCE_VECTOR, SOURCE_VECTOR_POINT
from ...i18n import tr
from ...layers import load_on_completion
from .. import definitions as d
from ..base import GeoClipAlgorithm, progress_callbacks, stages
from ..geolocation.parameters import batch_parameter
from ..io.geometry import iter_latlon, layer_folder, photo_field, photo_path
from ..io.outputs import ensure_writable_folder
from ..io.reference_outputs import left_out_rows, write_collection_layers


@dataclass(frozen=True)
class BuildJob:
    """A build, as plain data: the source (a folder or table path, or (path, lat, lon) items) and where to."""

    source: Any
    label: str
    recursive: bool
    fit: bool
    batch: int
    folder: Path
    model_choices: tuple[tuple[str, Any], ...]


class BuildReferences(GeoClipAlgorithm):
    """Your own geotagged photos as references that later geolocation runs match new photos against."""

    NO_INPUT = "No reference photos given: choose a folder of photos with EXIF GPS, a point layer with a photo " \
               "path field, or a CSV/Parquet table of photo paths with lat/lon."

    def name(self) -> str:
        return "buildreferences"

    def displayName(self) -> str:  # noqa: N802
        return tr("Build reference collection")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Turns your own geotagged photos (a field campaign, street-level photos, a colleague's survey) into a "
            "reference collection that 'Geolocate photos' can match new photos against (its 'Reference photos' "
            "parameter): a photo much like a reference photo is placed near it, a photo unlike all of them keeps "
            "GeoCLIP's answer.\n\n"
            "Source (one of): a folder of photos with EXIF GPS; a point layer with a field of photo paths "
            "(positions from the points, in any CRS); a CSV or Parquet table with a photo path column and lat/lon "
            "columns (an empty position falls back to the photo's EXIF GPS).\n\n"
            "The collection folder holds the index (reference_index.safetensors: each photo embedded once, keyed by "
            "its content and the CLIP backbone; building again into the same folder embeds only new photos), "
            "references.gpkg (layers 'references' and 'left_out': photos without a position, unreadable files and "
            "duplicates, each with its reason) and report/fit.html.\n\n"
            "The fit geolocates every reference photo against the others (leave-one-out) and reports the accuracy "
            "table at 1/25/200/750/2500 km for GeoCLIP alone and with the collection: how much your collection "
            "helps on photos of the places it covers.")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(
            d.FOLDER, tr("Folder of photos with EXIF GPS"), behavior=FILE_FOLDER, optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            d.RECURSIVE, tr("Include subfolders of the folder"), defaultValue=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            d.PHOTO_LAYER, tr("Point layer of photos (a field holds each photo's path)"), [SOURCE_VECTOR_POINT],
            optional=True))
        self.addParameter(QgsProcessingParameterField(
            d.PATH_FIELD, tr("Photo path field (empty: guess 'photo', 'path', …)"),
            parentLayerParameterName=d.PHOTO_LAYER, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            d.TABLE, tr("Table of photo paths with lat/lon (CSV or Parquet)"), optional=True,
            fileFilter=tr("Tables (*.csv *.CSV *.parquet *.PARQUET)")))
        fit = QgsProcessingParameterBoolean(
            d.FIT, tr("Fit by leave-one-out and report how much the collection helps"), defaultValue=True)
        fit.setFlags(fit.flags() | FLAG_ADVANCED)
        self.addParameter(fit)
        self.addParameter(batch_parameter(tr("Photos per batch"), d.DEFAULT_PHOTO_BATCH))
        self.add_model_parameters(image_side=True)
        self.addParameter(QgsProcessingParameterFolderDestination(
            d.COLLECTION, tr("Collection folder (building again into it embeds only new photos)")))
        self.addOutput(QgsProcessingOutputFile(d.INDEX, tr("Reference index")))
        self.addOutput(QgsProcessingOutputVectorLayer(d.REFERENCE_POINTS, tr("Reference photos"),
                                                      SOURCE_VECTOR_POINT))
        self.addOutput(QgsProcessingOutputVectorLayer(d.LEFT_OUT, tr("Photos left out"), SOURCE_VECTOR))
        self.addOutput(QgsProcessingOutputHtml(d.FIT_REPORT, tr("How much the collection helps (HTML)")))
        self.addOutput(QgsProcessingOutputNumber(d.N_REFERENCES, tr("Photos in the collection")))
        self.addOutput(QgsProcessingOutputNumber(d.N_EMBEDDED, tr("Photos embedded now")))
        self.addOutput(QgsProcessingOutputNumber(d.N_LEFT_OUT, tr("Photos left out")))

    def _given(self, parameters, context) -> list[str]:
        given = [self.parameterAsFile(parameters, d.FOLDER, context),
                 "layer" if parameters.get(d.PHOTO_LAYER) not in (None, "") else "",
                 self.parameterAsFile(parameters, d.TABLE, context)]
        return [name for name, value in zip(("folder", "layer", "table"), given) if value]

    def has_input(self, parameters, context) -> bool:
        return bool(self._given(parameters, context))

    # ------------------------------------------------------------------ inputs -> plain data
    def prepare(self, parameters, context, feedback) -> BuildJob:
        given = self._given(parameters, context)
        if len(given) != 1:
            raise QgsProcessingException(self.NO_INPUT if not given else
                                         f"Several sources given ({', '.join(given)}): build a collection from "
                                         f"one of them at a time (into the same collection folder to join them).")
        if given[0] == "folder":
            folder = self.parameterAsFile(parameters, d.FOLDER, context)
            if not Path(folder).is_dir():
                raise QgsProcessingException(f"Folder of photos '{folder}' does not exist. Check the path.")
            source, label = folder, Path(folder).name
        elif given[0] == "table":
            source = self.parameterAsFile(parameters, d.TABLE, context)
            label = Path(source).stem
        else:
            source, label = self._layer_items(parameters, context, feedback)
        folder = ensure_writable_folder(self.parameterAsString(parameters, d.COLLECTION, context))
        return BuildJob(source, label, self.parameterAsBool(parameters, d.RECURSIVE, context),
                        self.parameterAsBool(parameters, d.FIT, context),
                        self.parameterAsInt(parameters, d.BATCH_SIZE, context), folder,
                        tuple(sorted(self.model_choices(parameters, context).items())))

    def _layer_items(self, parameters, context, feedback) -> tuple[list[tuple], str]:
        """(photo path, lat, lon) per feature, the point in WGS84 (None, None: no geometry, EXIF GPS then)."""
        source = self.parameterAsSource(parameters, d.PHOTO_LAYER, context)
        field = photo_field(source, self.parameterAsString(parameters, d.PATH_FIELD, context))
        base = layer_folder(self.parameterAsVectorLayer(parameters, d.PHOTO_LAYER, context))
        request = QgsFeatureRequest().setSubsetOfAttributes([field], source.fields())
        items, empty = [], 0
        for feature, latlon, _reason in iter_latlon(source, context, feedback, request=request):
            path = photo_path(feature[field], base)
            if path is None:
                empty += 1
                continue
            items.append((path, *(latlon or (None, None))))
        if empty:
            feedback.reportError(f"{empty} feature(s) of '{source.sourceName()}' have an empty '{field}' field and "
                                 f"were skipped.", False)
        if not items:
            raise QgsProcessingException(f"The photo layer '{source.sourceName()}' gives no photo path in its "
                                         f"'{field}' field. Choose the field that holds the paths.")
        return items, source.sourceName()

    # ------------------------------------------------------------------ run
    def process(self, parameters, context, feedback) -> dict:
        job = self.job
        model = self.load_model(dict(job.model_choices), feedback)
        from model_utils.errors import Canceled, GeoClipError
        from model_utils.reference.build import build_collection
        from model_utils.reference.index import INDEX_FILE
        from model_utils.reference.report import fit_headline, write_fit_report

        steps = stages(feedback, 2)  # the CLIP tower (a first run downloads it), then the photos
        model.load_backbone(*progress_callbacks(steps))
        steps.setCurrentStep(1)
        progress, is_canceled = progress_callbacks(steps)
        try:
            built = build_collection(model, job.source, index=job.folder / INDEX_FILE, recursive=job.recursive,
                                     fit=job.fit, batch_size=job.batch, progress=progress, is_canceled=is_canceled)
        except Canceled as exc:
            raise QgsProcessingException("Canceled: the collection was left as it was.") from exc
        except GeoClipError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for line in built.text().splitlines():
            feedback.pushInfo(line)
        left_out = left_out_rows(built)
        gpkg = write_collection_layers(job.folder, built.collection, left_out)
        report = write_fit_report(built, job.folder / "report", title=f"Reference collection: {job.label}")
        if built.fit is not None:
            feedback.pushInfo(fit_headline(built.fit))
        feedback.pushInfo(f"Collection written to {job.folder} (how much it helps: {report})")
        return self._outputs(job, built, gpkg, report, len(left_out), context)

    def _outputs(self, job: BuildJob, built, gpkg: Path, report: Path, n_left: int, context) -> dict:
        group = f"GeoCLIP reference collection {job.label}"
        points, left = f"{gpkg}|layername=references", f"{gpkg}|layername=left_out"
        if n_left:
            load_on_completion(context, left, "Photos left out", group, "left_out", run_id=str(job.folder))
        load_on_completion(context, points, "Reference photos", group, "references", run_id=str(job.folder))
        return {d.COLLECTION: str(job.folder), d.INDEX: str(built.index), d.REFERENCE_POINTS: points,
                d.LEFT_OUT: left, d.FIT_REPORT: str(report), d.N_REFERENCES: len(built.collection),
                d.N_EMBEDDED: built.embedded, d.N_LEFT_OUT: n_left}
