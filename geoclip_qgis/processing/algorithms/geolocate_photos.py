"""``geoclip:geolocatephotos``: photos -> probability rasters + top-k points (+ accuracy report).

Inputs are frozen into a plain list of photo paths first; the model then streams predictions batch
by batch. Every output goes into a hidden run folder that is renamed into place only when the run
succeeds, so a cancel or failure leaves no partial files and earlier runs are never overwritten.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingOutputHtml,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
)

from ...compat import FILE_FOLDER, REQUEST_NO_GEOMETRY, SOURCE_FILE, SOURCE_VECTOR, SOURCE_VECTOR_POINT
from ...i18n import tr
from .. import definitions as d
from .. import geolocation
from ..base import GeoClipAlgorithm
from ..geolocation import InputKind
from ..io.geometry import layer_folder, photo_field, photo_path


class GeolocatePhotos(GeoClipAlgorithm):
    """Where on Earth was each photo taken? GeoCLIP's answer as rasters and points."""

    KIND = InputKind(
        noun="photo", plural="photos", count_output=d.N_PHOTOS, default_batch=d.DEFAULT_PHOTO_BATCH,
        source_fields=("photo", "photo_name"),
        label=lambda source: Path(source).name, stem=lambda source: Path(source).stem,
        group_title=lambda result: f"Photos {dt.datetime.now():%Y-%m-%d %H:%M} ({result['n_ok']})",
        load_tower=lambda model, progress=None, is_canceled=None: model.load_backbone(progress, is_canceled),
        predictions=lambda model, items, top_k, batch, progress, is_canceled, gallery: model.iter_predict(
            items, top_k=top_k, batch_size=batch, progress=progress, is_canceled=is_canceled, gallery=gallery))

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
            "available on that input). JPEG, PNG, TIFF, WebP, BMP, GIF, HEIC/HEIF (iPhone; needs pillow-heif) and AVIF "
            "photos are read with their EXIF orientation and GPS. Bad or missing photos are reported and skipped; "
            "the others finish. Files of the folder that are not photos (videos, RAW, HEIC without its decoder, …) "
            "are counted by reason in the log, the run summary and the report.\n\n"
            "Outputs, in a new subfolder of the output folder (never overwriting earlier runs):\n"
            "• one probability raster per photo (GeoTIFF, EPSG:4326, float32): the GeoCLIP probability "
            "mass in each cell, spread from the gallery points with a Gaussian kernel of the given "
            "bandwidth on the sphere. Over the world extent cells sum to 1; over a smaller extent the "
            "raster holds the mass inside it. 'Density' writes probability per km² instead.\n"
            "• predictions.gpkg: the top-k guesses of every photo (photo, photo_name, rank, prob, lat, "
            "lon, and true_lat, true_lon, error_km when the photo has EXIF GPS).\n"
            "• report/accuracy.html and .csv when photos carry EXIF GPS: share within 1/25/200/750/2500 km.\n\n"
            "Reference photos: with a collection of your own geotagged photos (built by 'Build reference "
            "collection'), each photo is also matched against them by image similarity; the raster, credible regions "
            "and top-k points then come from GeoCLIP's answer fused with the positions of the most similar "
            "references (as much as the collection's fit says similarity means 'same place'; a photo unlike all of "
            "them keeps GeoCLIP's answer). Extra layers: 'Matched reference photos' (rank, similarity, the photo in "
            "the map tip) and lines from each photo's best guess to its matches; report/references.html shows "
            "GeoCLIP alone and fused side by side.\n\n"
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
            d.PHOTOS, tr("Photo files"), layerType=SOURCE_FILE, optional=True)
        files.setHelp("Photo files (JPEG, PNG, TIFF, WebP, HEIC/HEIF, AVIF, …)")
        self.addParameter(files)
        self.addParameter(QgsProcessingParameterFile(
            d.FOLDER, tr("Folder of photos"), behavior=FILE_FOLDER, optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            d.RECURSIVE, tr("Include subfolders of the folder"), defaultValue=False))
        self.addParameter(QgsProcessingParameterFeatureSource(
            d.PHOTO_LAYER, tr("Layer of photos (a field holds each photo's path)"),
            [SOURCE_VECTOR], optional=True))
        self.addParameter(QgsProcessingParameterField(
            d.PATH_FIELD, tr("Photo path field (empty: guess 'photo', 'path', …)"),
            parentLayerParameterName=d.PHOTO_LAYER, optional=True))
        references = QgsProcessingParameterFile(
            d.REFERENCES, tr("Reference photos: a collection folder from 'Build reference collection' (optional)"),
            behavior=FILE_FOLDER, optional=True)
        references.setHelp("Your own geotagged photos, built into a collection: each photo is matched against them "
                           "and GeoCLIP's answer is fused with the positions of the most similar ones.")
        self.addParameter(references)
        geolocation.add_parameters(self, self.KIND)
        self.addOutput(QgsProcessingOutputVectorLayer(d.MATCHES, tr("Matched reference photos"), SOURCE_VECTOR_POINT))
        self.addOutput(QgsProcessingOutputHtml(d.REFERENCE_REPORT, tr("GeoCLIP alone and with reference photos "
                                                                      "(HTML)")))

    NO_INPUT = "No photos given: choose photo files, a folder of photos, or a layer with a photo path field."

    def has_input(self, parameters, context) -> bool:
        return bool(any(str(p).strip() for p in self.parameterAsFileList(parameters, d.PHOTOS, context))
                    or self.parameterAsFile(parameters, d.FOLDER, context)
                    or parameters.get(d.PHOTO_LAYER) not in (None, ""))

    # ------------------------------------------------------------------ inputs -> plain data
    def inputs(self, parameters, context, feedback):
        """The photo paths, and the folder's scan (None without a folder): what it left out is said here."""
        paths = [str(p) for p in self.parameterAsFileList(parameters, d.PHOTOS, context) if str(p).strip()]
        folder = self.parameterAsFile(parameters, d.FOLDER, context)
        scan = None
        if folder:
            from model_utils.errors import GeoClipError
            from model_utils.photos.folders import scan_photos

            try:
                scan = scan_photos(folder, recursive=self.parameterAsBool(parameters, d.RECURSIVE, context))
            except GeoClipError as exc:
                raise QgsProcessingException(str(exc)) from exc
            paths.extend(str(p) for p in scan.photos)
        source = self.parameterAsSource(parameters, d.PHOTO_LAYER, context)
        if source is not None:
            paths.extend(self._layer_paths(source, parameters, context, feedback))
        if not paths:
            raise QgsProcessingException(scan.no_photo_message() if scan is not None else self.NO_INPUT)
        if scan is not None:  # every file left out, by reason (or why the folder gave none), in the log
            for line in scan.skipped_lines() if scan.photos else [scan.no_photo_message()]:
                feedback.reportError(line, False)
        return paths, scan

    def _layer_paths(self, source, parameters, context, feedback) -> list[str]:
        field = photo_field(source, self.parameterAsString(parameters, d.PATH_FIELD, context))
        base = layer_folder(self.parameterAsVectorLayer(parameters, d.PHOTO_LAYER, context))
        request = QgsFeatureRequest().setFlags(REQUEST_NO_GEOMETRY)
        request.setSubsetOfAttributes([field], source.fields())
        paths, empty = [], 0
        for feature in source.getFeatures(request):
            path = photo_path(feature[field], base)
            if path is None:
                empty += 1
            else:
                paths.append(path)
        if empty:
            feedback.reportError(f"{empty} feature(s) of '{source.sourceName()}' have an empty '{field}' "
                                 f"field and were skipped.", False)
        return paths

    # ------------------------------------------------------------------ run
    def prepare(self, parameters, context, feedback) -> geolocation.GeolocationJob:
        paths, scan = self.inputs(parameters, context, feedback)
        return geolocation.prepare(self, self.KIND, paths, parameters, context, feedback, scan=scan)

    def process(self, parameters, context, feedback) -> dict:
        return geolocation.run(self, self.KIND, self.job, context, feedback)
