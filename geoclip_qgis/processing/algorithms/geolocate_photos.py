"""``geoclip:geolocatephotos``: photos -> probability rasters + top-k points (+ accuracy report).

Inputs are frozen into a plain list of photo paths first; the model then streams predictions batch
by batch. Every output goes into a hidden run folder that is renamed into place only when the run
succeeds, so a cancel or failure leaves no partial files and earlier runs are never overwritten.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingOutputFolder,
    QgsProcessingOutputHtml,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from ...compat import (
    FILE_FOLDER,
    FLAG_ADVANCED,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    REQUEST_NO_GEOMETRY,
    SOURCE_FILE,
    SOURCE_VECTOR,
    SOURCE_VECTOR_POINT,
)
from ...i18n import tr
from ...layers import load_on_completion
from ..base import GeoClipAlgorithm, progress_callbacks
from ..io.geometry import layer_folder
from ..io.outputs import ensure_writable_folder, write_geotiff
from ..io.prediction_outputs import (
    accuracy_report,
    new_run_name,
    points_writer,
    unique_stem,
    write_points,
    write_truth_lines,
)
from ..regional_gallery import regional_gallery

PATH_FIELD_GUESSES = ("photo", "path", "filepath", "file_path", "filename", "image", "file")


class GeolocatePhotos(GeoClipAlgorithm):
    """Where on Earth was each photo taken? GeoCLIP's answer as rasters and points."""

    PHOTOS = "PHOTOS"
    FOLDER = "FOLDER"
    RECURSIVE = "RECURSIVE"
    PHOTO_LAYER = "PHOTO_LAYER"
    PATH_FIELD = "PATH_FIELD"
    TOP_K = "TOP_K"
    CELL_SIZE = "CELL_SIZE"
    BANDWIDTH = "BANDWIDTH_KM"
    EXTENT = "EXTENT"
    DENSITY = "DENSITY"
    RASTERS = "WRITE_RASTERS"
    BATCH = "BATCH_SIZE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    GALLERY = "GALLERY"
    GALLERY_SPACING = "GALLERY_SPACING"
    GALLERIES = ["GeoCLIP's 100K worldwide gallery",
                 "Regional: a dense grid over the raster extent (city-scale zoom)"]
    NOUN = "photo"
    DEFAULT_BATCH = 8
    SOURCE_FIELDS = ("photo", "photo_name")

    def name(self) -> str:
        return "geolocatephotos"

    def displayName(self) -> str:  # noqa: N802
        return tr("Geolocate photos")

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            tr("Estimates where each photo was taken with GeoCLIP (NeurIPS 2023): the photo is compared "
            "with GeoCLIP's 100,000-point GPS gallery, giving a probability for every gallery point.\n\n"
            "Photos: pick files, a folder (optionally with its subfolders), and/or a point layer whose "
            "field holds photo paths (e.g. from 'Import geotagged photos'; selected features only is "
            "available on that input). Bad or missing photos are reported and skipped; the others finish.\n\n"
            "Outputs, in a new subfolder of the output folder (never overwriting earlier runs):\n"
            "• one probability raster per photo (GeoTIFF, EPSG:4326, float32): the GeoCLIP probability "
            "mass in each cell, spread from the gallery points with a Gaussian kernel of the given "
            "bandwidth on the sphere. Over the world extent cells sum to 1; over a smaller extent the "
            "raster holds the mass inside it. 'Density' writes probability per km² instead.\n"
            "• predictions.gpkg: the top-k guesses of every photo (photo, photo_name, rank, prob, lat, "
            "lon, and true_lat, true_lon, error_km when the photo has EXIF GPS).\n"
            "• report/accuracy.html and .csv when photos carry EXIF GPS: share within 1/25/200/750/2500 km.\n\n"
            "City-scale zoom: with 'GPS gallery' = Regional, the photo is ranked against a dense grid of points "
            "over the raster extent (spacing: 'Regional gallery spacing', default the cell size) instead of the "
            "100K worldwide gallery, so the answer and the raster resolve streets and districts rather than "
            "~45 km gallery spacing. Probabilities are then conditional on the photo being inside the extent: "
            "run worldwide first, zoom the map to the likely city, and run again with the canvas extent. Grid "
            "embeddings are cached on disk, so a second run over the same area starts at once.\n\n"
            "The CLIP ViT-L/14 backbone is needed (downloaded once, or a local folder: Advanced parameters "
            "or the GeoCLIP panel's Setup tab).")
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        files = QgsProcessingParameterMultipleLayers(
            self.PHOTOS, tr("Photo files"), layerType=SOURCE_FILE, optional=True)
        files.setHelp("Photo files (JPEG, PNG, TIFF, WebP, …)")
        self.addParameter(files)
        self.addParameter(QgsProcessingParameterFile(
            self.FOLDER, tr("Folder of photos"), behavior=FILE_FOLDER, optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.RECURSIVE, tr("Include subfolders of the folder"), defaultValue=False))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.PHOTO_LAYER, tr("Layer of photos (a field holds each photo's path)"),
            [SOURCE_VECTOR], optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.PATH_FIELD, tr("Photo path field (empty: guess 'photo', 'path', …)"),
            parentLayerParameterName=self.PHOTO_LAYER, optional=True))
        self.add_output_parameters()

    def add_output_parameters(self) -> None:
        """Top-k, raster grid, backbone and output folder: shared by every 'geolocate …' algorithm."""
        self.addParameter(QgsProcessingParameterNumber(
            self.TOP_K, tr(f"Top-k predictions per {self.NOUN}"), NUMBER_INTEGER,
            defaultValue=5, minValue=1, maxValue=1000))
        self.addParameter(QgsProcessingParameterNumber(
            self.CELL_SIZE, tr("Raster cell size (degrees)"), NUMBER_DOUBLE,
            defaultValue=0.25, minValue=0.001, maxValue=10.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.BANDWIDTH, tr("Kernel bandwidth (km, standard deviation on the sphere)"),
            NUMBER_DOUBLE, defaultValue=50.0, minValue=0.0, maxValue=5000.0))
        self.addParameter(QgsProcessingParameterExtent(
            self.EXTENT, tr("Raster extent (empty: the whole world; any CRS)"), optional=True))
        gallery = QgsProcessingParameterEnum(self.GALLERY, tr("GPS gallery"), options=self.GALLERIES, defaultValue=0)
        gallery.setHelp("Regional: rank against a grid of points over the raster extent (zoom the map to a city "
                        "and use the canvas extent); answers and rasters get the grid's resolution.")
        self.addParameter(gallery)
        self.addParameter(QgsProcessingParameterNumber(
            self.GALLERY_SPACING, tr("Regional gallery spacing (degrees; 0 = the raster cell size)"),
            NUMBER_DOUBLE, defaultValue=0.0, minValue=0.0, maxValue=10.0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.DENSITY, tr("Write probability density per km² instead of mass per cell"), defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(
            self.RASTERS, tr(f"Write a probability raster per {self.NOUN}"), defaultValue=True))
        batch = QgsProcessingParameterNumber(
            self.BATCH, tr(f"{self.NOUN.capitalize()}s per batch"), NUMBER_INTEGER,
            defaultValue=self.DEFAULT_BATCH, minValue=1, maxValue=256)
        batch.setFlags(batch.flags() | FLAG_ADVANCED)
        self.addParameter(batch)
        self.add_model_parameters(image_side=True)
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT_FOLDER, tr("Output folder (a new subfolder is made for each run)")))
        self.addOutput(QgsProcessingOutputFolder("RUN_FOLDER", tr("Run folder")))
        self.addOutput(QgsProcessingOutputVectorLayer("POINTS", tr("Top-k predictions"),
                                                      SOURCE_VECTOR_POINT))
        self.addOutput(QgsProcessingOutputMultipleLayers("RASTERS", tr("Probability rasters")))
        self.addOutput(QgsProcessingOutputHtml("REPORT_HTML", tr("Accuracy report (HTML)")))
        self.addOutput(QgsProcessingOutputNumber("N_PHOTOS", tr(f"{self.NOUN.capitalize()}s geolocated")))
        self.addOutput(QgsProcessingOutputNumber("N_FAILED", tr(f"{self.NOUN.capitalize()}s that failed")))
        self.addOutput(QgsProcessingOutputString("ERRORS", tr(f"Per-{self.NOUN} errors")))

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API
        """Refuse a run with no input at all before a task starts (the dock and the toolbox both ask)."""
        ok, message = super().checkParameterValues(parameters, context)
        if ok and not self.has_input(parameters, context):
            return False, self.NO_INPUT
        return ok, message

    NO_INPUT = "No photos given: choose photo files, a folder of photos, or a layer with a photo path field."

    def has_input(self, parameters, context) -> bool:
        return bool(any(str(p).strip() for p in self.parameterAsFileList(parameters, self.PHOTOS, context))
                    or self.parameterAsFile(parameters, self.FOLDER, context)
                    or parameters.get(self.PHOTO_LAYER) not in (None, ""))

    # ------------------------------------------------------------------ what varies between photos and text
    def label(self, source: str) -> str:
        """Short name of one input for logs, layer names and the points' name field."""
        return Path(source).name

    def stem(self, source: str) -> str:
        """Raster file name (before making it safe and unique) for one input."""
        return Path(source).stem

    def group_title(self, result: dict) -> str:
        """What the layer panel calls this run: what ran, when, how many."""
        import datetime as dt

        return f"Photos {dt.datetime.now():%Y-%m-%d %H:%M} ({result['n_ok']})"

    def load_tower(self, model, progress=None, is_canceled=None) -> None:
        model.load_backbone(progress, is_canceled)

    def predictions(self, model, items: list[str], top_k: int, batch: int, progress, is_canceled, gallery):
        return model.iter_predict(items, top_k=top_k, batch_size=batch, progress=progress, is_canceled=is_canceled,
                                  gallery=gallery)

    # ------------------------------------------------------------------ inputs -> plain data
    def inputs(self, parameters, context, feedback) -> list[str]:
        paths = [str(p) for p in self.parameterAsFileList(parameters, self.PHOTOS, context) if str(p).strip()]
        folder = self.parameterAsFile(parameters, self.FOLDER, context)
        if folder:
            from model_utils.errors import GeoClipError
            from model_utils.photos.folders import find_photos

            try:
                found = find_photos(folder, recursive=self.parameterAsBool(parameters, self.RECURSIVE, context))
            except GeoClipError as exc:
                raise QgsProcessingException(str(exc)) from exc
            if not found:
                feedback.reportError(f"No photos (jpg, png, tif, webp, …) found in folder {folder}", False)
            paths.extend(str(p) for p in found)
        source = self.parameterAsSource(parameters, self.PHOTO_LAYER, context)
        if source is not None:
            paths.extend(self._layer_paths(source, parameters, context, feedback))
        if not paths:
            raise QgsProcessingException(self.NO_INPUT)
        return paths

    def _layer_paths(self, source, parameters, context, feedback) -> list[str]:
        names = source.fields().names()
        field = self.parameterAsString(parameters, self.PATH_FIELD, context)
        if not field:
            lower = {n.lower(): n for n in names}
            field = next((lower[g] for g in PATH_FIELD_GUESSES if g in lower), "")
        if not field or field not in names:
            raise QgsProcessingException(
                f"The photo layer '{source.sourceName()}' has no photo path field "
                f"({'no field named ' + field if field else 'none of ' + ', '.join(PATH_FIELD_GUESSES)}); "
                f"its fields are: {', '.join(names) or 'none'}. Choose the field that holds the paths.")
        base = layer_folder(self.parameterAsVectorLayer(parameters, self.PHOTO_LAYER, context))
        request = QgsFeatureRequest().setFlags(REQUEST_NO_GEOMETRY)
        request.setSubsetOfAttributes([field], source.fields())
        paths, empty = [], 0
        for feature in source.getFeatures(request):
            value = feature[field]
            if value is None or str(value).strip() in ("", "NULL"):
                empty += 1
                continue
            path = Path(str(value)).expanduser()
            paths.append(str(path if path.is_absolute() or base is None else base / path))
        if empty:
            feedback.reportError(f"{empty} feature(s) of '{source.sourceName()}' have an empty '{field}' "
                                 f"field and were skipped.", False)
        return paths

    # ------------------------------------------------------------------ run
    def process(self, parameters, context, feedback):
        paths = self.inputs(parameters, context, feedback)
        top_k = self.parameterAsInt(parameters, self.TOP_K, context)
        write_rasters = self.parameterAsBool(parameters, self.RASTERS, context)
        spec = self.grid_spec(parameters, context, self.EXTENT, self.CELL_SIZE) if write_rasters else None
        bandwidth = self.parameterAsDouble(parameters, self.BANDWIDTH, context)
        density = self.parameterAsBool(parameters, self.DENSITY, context)
        batch = self.parameterAsInt(parameters, self.BATCH, context)
        out_root = ensure_writable_folder(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        feedback.pushInfo(f"{len(paths)} {self.NOUN}(s) to geolocate; outputs under {out_root}")

        regional = regional_gallery(self, parameters, context, feedback)
        model = self.load_model(parameters, context, feedback)
        from model_utils.errors import Canceled, GeoClipError

        run_name = new_run_name(out_root)
        work = out_root / f".{run_name}.part"
        work.mkdir(parents=True)
        try:
            result = self._run(model, paths, top_k, spec, bandwidth, density, batch, work, feedback, regional)
            final = out_root / run_name
            os.replace(work, final)
        except Canceled as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise QgsProcessingException("Canceled: no outputs were kept.") from exc
        except GeoClipError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise QgsProcessingException(str(exc)) from exc
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return self._outputs(result, final, run_name, context, feedback)

    def _run(self, model, paths, top_k, spec, bandwidth, density, batch, work: Path, feedback,
             regional=None) -> dict:
        from model_utils.maps.heatmap import probability_grid

        # a first run downloads the backbone (~1.7 GB): its own 0..100 % in bytes, then the run's stages
        self.load_tower(model, *progress_callbacks(feedback, 0, 100))
        gallery_progress, is_canceled = progress_callbacks(feedback, 0, 10)
        model.gallery_embeddings(progress=gallery_progress, is_canceled=is_canceled, gallery=regional)
        predict_progress, _ = progress_callbacks(feedback, 10, 95)
        gallery = (regional or model.gallery).latlon
        writer, fields, points_path = points_writer(work / "predictions.gpkg", self.SOURCE_FIELDS)
        raster_dir = work / "rasters"
        raster_dir.mkdir()
        rasters, errors, truth_rows, n_ok = [], [], [], 0
        used_names: set[str] = set()
        try:
            for pred in self.predictions(model, paths, top_k, batch, predict_progress, is_canceled, regional):
                if pred.error:
                    errors.append(pred.error)
                    feedback.reportError(pred.error, False)
                    continue
                n_ok += 1
                err_km = None if pred.gps is None else float(pred.errors_km[0])
                # every geolocated photo is a report row: those without GPS are counted as left out
                truth_rows.append(dict(photo=pred.source, pred_lat=float(pred.lat[0]), pred_lon=float(pred.lon[0]),
                                       true_lat=None if pred.gps is None else pred.gps[0],
                                       true_lon=None if pred.gps is None else pred.gps[1],
                                       error_km=err_km, prob=float(pred.prob[0])))
                write_points(writer, fields, pred, self.label(pred.source))
                if spec is not None:
                    grid = probability_grid(gallery[:, 0], gallery[:, 1], pred.gallery_probs, spec,
                                            bandwidth_km=bandwidth, density=density)
                    stem = unique_stem(self.stem(pred.source), used_names)
                    raster = write_geotiff(
                        grid.values, spec.geotransform, raster_dir / f"{stem}.tif",
                        description="probability per km2" if density else "probability mass per cell",
                        metadata={self.NOUN: pred.source, "mass_in_extent": f"{grid.mass:.6f}",
                                  "bandwidth_km": f"{bandwidth:g}", "top1_lat": f"{pred.lat[0]:.6f}",
                                  "top1_lon": f"{pred.lon[0]:.6f}"})
                    rasters.append((raster.name, self.label(pred.source), grid.mass))
                feedback.pushInfo(f"{self.label(pred.source)}: top-1 {pred.lat[0]:.4f}, {pred.lon[0]:.4f} "
                                  f"(p={pred.prob[0]:.4f})" + (f", error {err_km:.1f} km" if err_km is not None
                                                               else ""))
        finally:
            del writer  # closes the GeoPackage
        if n_ok == 0:
            raise QgsProcessingException(  # each reason was reported once above, as it happened
                f"None of the {len(paths)} {self.NOUN}(s) could be geolocated (the reasons are listed above).")
        feedback.pushInfo(f"{n_ok} geolocated" + (f", {len(errors)} skipped (see above)" if errors else ""))
        truth = write_truth_lines(points_path, truth_rows, self.label)
        report = None
        if any(row["true_lat"] is not None for row in truth_rows):
            report = accuracy_report(truth_rows, work / "report", feedback)
        return dict(points=points_path.name, rasters=rasters, errors=errors, n_ok=n_ok, report=report, truth=truth,
                    first=self.label(truth_rows[0]["photo"]) if truth_rows else "")

    def _outputs(self, result: dict, final: Path, run_name: str, context, feedback) -> dict:
        points = str(final / result["points"])
        rasters = [str(final / "rasters" / name) for name, _, _ in result["rasters"]]
        group = f"GeoCLIP {self.group_title(result)}"
        for (_name, label, _mass), path in zip(result["rasters"], rasters):
            load_on_completion(context, path, self.stem(label), group, "probability", raster=True, run_id=str(final))
        if result["truth"]:
            load_on_completion(context, f"{points}|layername=truth", "Error to EXIF position", group, "truth",
                               run_id=str(final))
        load_on_completion(context, f"{points}|layername=predictions", "Top-k predictions", group, "points",
                           run_id=str(final))
        report = str(final / "report" / result["report"]) if result["report"] else ""
        if report:
            feedback.pushInfo(f"Accuracy report: {report}")
        feedback.setProgress(100)
        return {
            "RUN_FOLDER": str(final), "POINTS": points, "RASTERS": rasters, "REPORT_HTML": report,
            "N_PHOTOS": result["n_ok"], "N_FAILED": len(result["errors"]), "ERRORS": "\n".join(result["errors"]),
            self.OUTPUT_FOLDER: str(final.parent),
        }
