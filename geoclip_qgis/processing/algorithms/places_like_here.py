"""``geoclip:placeslikehere``: which real photo locations does GeoCLIP confuse with this place?

By default the query place's GPS embedding is scored against GeoCLIP's 100K gallery of photo locations
exactly as a photo is, its own neighbourhood optionally left out, and spread into a probability raster
with the photo rasters' kernel and style. The raw cosine field of the GPS embeddings is the second mode,
named for what it is. Works fully offline (location encoder only).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterPoint,
    QgsProcessingParameterRasterDestination,
)

from ...compat import FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR
from ...i18n import tr
from ...layers import load_on_completion
from .. import definitions as d
from ..base import GeoClipAlgorithm, progress_callbacks, stages
from ..io.geometry import WGS84, sample_points
from ..io.outputs import refuse_existing, write_geotiff

MAX_QUERY_POINTS = 5000  # more gives the same mean embedding, slower


class SimilarityMode(IntEnum):
    """The 'Answer' choice, by its index in the enum parameter."""

    ANALOGUES = 0
    RAW_COSINE = 1


MODE_LABELS = {
    SimilarityMode.ANALOGUES: "Where GeoCLIP would place a photo from here: probability over its 100K photo locations",
    SimilarityMode.RAW_COSINE: "Raw cosine similarity of GPS embeddings (meaningless over oceans and empty land)",
}


@dataclass(frozen=True)
class SimilarityJob:
    """The query place, raster grid and output, read from the parameters on the main thread."""

    points: tuple[tuple[float, float], ...]  # [lat, lon] in WGS84: one point, or a region's points
    name: str  # what the layer is called after
    mode: SimilarityMode
    spec: Any  # model_utils GridSpec
    out: Path
    samples: int  # raw mode: n x n points averaged per cell
    bandwidth_km: float  # analogue mode: the kernel
    exclude_km: float  # analogue mode: gallery points this close to the query are left out
    model_choices: tuple[tuple[str, Any], ...]
    on_land: bool = True  # analogue mode: each gallery point's kernel renormalised over land cells


class PlacesLikeHere(GeoClipAlgorithm):
    """Places GeoCLIP considers alike to a point or region, as a raster."""

    NO_INPUT = "Give a query point (click on the map) or a layer with the features of the place."

    def name(self) -> str:
        return "placeslikehere"

    def displayName(self) -> str:  # noqa: N802
        return tr("Places like here")

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            tr("Which real photo locations does GeoCLIP confuse with a place? Give a point (click on the map) or "
            "a layer: its selected features, else all of them, form the place (polygons by points spread "
            "inside them, lines by points along them), and their GPS embeddings are averaged: 'places like "
            "this region'.\n\n"
            "<b>Answer</b> (default): the place's GeoCLIP location embedding is scored against the 100,000 "
            "locations of GeoCLIP's photo gallery exactly as a photo's embedding is (softmax of the model's "
            "logit scale times the cosine), and the probabilities are spread with the same geodesic kernel as "
            "the photo rasters: a probability raster that sums to 1 over the world. 'Leave out' removes the "
            "gallery points within that distance of the place (default 300 km), so look-alikes elsewhere show "
            "instead of the place's own surroundings; 0 keeps them.\n\n"
            "<b>Raw cosine</b>: the cosine similarity in [-1, 1] between the place's embedding and every "
            "cell's. GeoCLIP's location encoder was trained only on photo locations, so over oceans, ice and "
            "empty land its values are arbitrary: read it only where people take photos. Each cell is the "
            "mean over n x n points in it ('Samples per cell side').\n\n"
            "Needs no image backbone and no network.")
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterPoint(d.POINT, tr("Query point (any CRS)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            d.LAYER, tr("…or a place from a layer (its selected features, else all)"), [SOURCE_VECTOR],
            optional=True))
        mode = QgsProcessingParameterEnum(d.MODE, tr("Answer"), options=[MODE_LABELS[m] for m in SimilarityMode],
                                          defaultValue=int(SimilarityMode.ANALOGUES))
        mode.setHelp("Probability over GeoCLIP's real photo locations (sums to 1), or the raw cosine field.")
        self.addParameter(mode)
        exclude = QgsProcessingParameterNumber(
            d.EXCLUDE_KM, tr("Leave out gallery points this close to the place (km; probability answer)"),
            NUMBER_DOUBLE, defaultValue=300.0, minValue=0.0, maxValue=5000.0)
        exclude.setHelp("0 keeps the place's own surroundings, which otherwise hold most of the probability.")
        self.addParameter(exclude)
        self.addParameter(QgsProcessingParameterNumber(
            d.BANDWIDTH_KM, tr("Kernel bandwidth (km; probability answer)"), NUMBER_DOUBLE,
            defaultValue=d.WORLD_BANDWIDTH_KM, minValue=0.0, maxValue=5000.0))
        on_land = QgsProcessingParameterBoolean(
            d.ON_LAND, tr("Probability on land only (probability answer)"), defaultValue=True)
        on_land.setHelp("Each gallery point's kernel is renormalised over land cells (GSHHG shoreline, lakes as "
                        "water), so look-alikes on coasts keep their mass on land. Untick to spread over sea too.")
        self.addParameter(on_land)
        self.addParameter(QgsProcessingParameterNumber(
            d.CELL_SIZE, tr("Cell size (degrees)"), NUMBER_DOUBLE, defaultValue=1.0, minValue=0.01, maxValue=10.0))
        samples = QgsProcessingParameterNumber(
            d.SAMPLES, tr("Samples per cell side (raw cosine: n x n points averaged per cell)"),
            NUMBER_INTEGER, defaultValue=2, minValue=1, maxValue=4)
        samples.setHelp("1: the cell centre only (fast, speckled at coarse cells); 2 or more: the mean over n x n "
                        "points in the cell, n² times the encoding on the first query at a cell size.")
        samples.setFlags(samples.flags() | FLAG_ADVANCED)
        self.addParameter(samples)
        self.addParameter(QgsProcessingParameterExtent(
            d.EXTENT, tr("Extent (empty: the whole world; any CRS)"), optional=True))
        self.add_model_parameters(image_side=False)
        self.addParameter(QgsProcessingParameterRasterDestination(d.OUTPUT, tr("Places like here raster")))

    def has_input(self, parameters, context) -> bool:
        return parameters.get(d.POINT) not in (None, "") or parameters.get(d.LAYER) not in (None, "")

    def _query(self, parameters, context) -> tuple[list[tuple[float, float]], str]:
        """The place's [lat, lon] points in WGS84 and its name."""
        if parameters.get(d.POINT) not in (None, ""):
            point = self.parameterAsPoint(parameters, d.POINT, context, WGS84)
            return [(point.y(), point.x())], f"({point.y():.2f}, {point.x():.2f})"
        source = self.parameterAsSource(parameters, d.LAYER, context)
        if source is None:
            raise QgsProcessingException(self.NO_INPUT)
        transform = QgsCoordinateTransform(source.sourceCrs(), WGS84, context.transformContext())
        points: list[tuple[float, float]] = []
        for feature in source.getFeatures(QgsFeatureRequest().setNoAttributes()):
            for xy in sample_points(feature.geometry()):
                try:
                    xy = transform.transform(xy)
                except QgsCsException:
                    continue
                points.append((xy.y(), xy.x()))
            if len(points) >= MAX_QUERY_POINTS:
                break
        if not points:
            raise QgsProcessingException(f"Layer '{source.sourceName()}' has no feature with a geometry to use as "
                                         "the place.")
        return points[:MAX_QUERY_POINTS], source.sourceName()

    def prepare(self, parameters, context, feedback) -> SimilarityJob:
        import numpy as np

        from model_utils.geo import invalid_latlon

        points, name = self._query(parameters, context)
        bad = invalid_latlon(np.array(points))
        if bad.any():
            lat, lon = np.array(points)[bad][0]
            raise QgsProcessingException(f"The query point ({lat:.4f}, {lon:.4f}) is outside WGS84 lat/lon ranges.")
        out = Path(self.parameterAsOutputLayer(parameters, d.OUTPUT, context))
        if out.suffix.lower() not in (".tif", ".tiff"):
            raise QgsProcessingException(f"The raster is a GeoTIFF: use a .tif name, not {out.name}")
        refuse_existing(out)
        if len(points) > 1:
            feedback.pushInfo(f"The place '{name}': the mean GPS embedding of {len(points)} point(s).")
        return SimilarityJob(
            points=tuple((float(a), float(b)) for a, b in points), name=name,
            mode=SimilarityMode(self.parameterAsEnum(parameters, d.MODE, context)),
            spec=self.grid_spec(parameters, context, d.EXTENT, d.CELL_SIZE), out=out,
            samples=self.parameterAsInt(parameters, d.SAMPLES, context),
            bandwidth_km=self.parameterAsDouble(parameters, d.BANDWIDTH_KM, context),
            exclude_km=self.parameterAsDouble(parameters, d.EXCLUDE_KM, context),
            model_choices=tuple(sorted(self.model_choices(parameters, context).items())),
            on_land=self.parameterAsBool(parameters, d.ON_LAND, context))

    def process(self, parameters, context, feedback):
        job: SimilarityJob = self.job
        model = self.load_model(dict(job.model_choices), feedback)
        from model_utils.errors import Canceled, GeoClipError
        from model_utils.maps.land import land_mask_or_none
        from model_utils.maps.similarity import analogue_grid, similarity_grid

        steps = stages(feedback, 2)  # the grid, then its GeoTIFF (the similarity quantile is over every cell)
        progress, is_canceled = progress_callbacks(steps)
        try:
            if job.mode == SimilarityMode.ANALOGUES:
                land = land_mask_or_none(job.on_land, job.spec.cell_size, lambda t: feedback.reportError(t, False))
                grid = analogue_grid(model, list(job.points), job.spec, bandwidth_km=job.bandwidth_km,
                                     exclude_km=job.exclude_km, progress=progress, is_canceled=is_canceled, land=land)
                values = grid.values
            else:
                values = similarity_grid(model, list(job.points), job.spec, samples=job.samples, progress=progress,
                                         is_canceled=is_canceled)
        except Canceled as exc:
            raise QgsProcessingException("Canceled: no raster was written.") from exc
        except (GeoClipError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        steps.setCurrentStep(1)
        job.out.parent.mkdir(parents=True, exist_ok=True)
        self._write(job, values, feedback)
        feedback.setProgress(100)
        if context.willLoadLayerOnCompletion(str(job.out)):  # the user asked to open the output
            style = "probability" if job.mode == SimilarityMode.ANALOGUES else "similarity"
            load_on_completion(context, str(job.out), f"Places like {job.name}", "GeoCLIP places like here", style,
                               output_name=d.OUTPUT, raster=True)
        return {d.OUTPUT: str(job.out)}

    @staticmethod
    def _write(job: SimilarityJob, values, feedback) -> None:
        import numpy as np

        from ...layers import SIMILARITY_STYLE_FROM, SIMILARITY_STYLE_QUANTILE, SIMILARITY_STYLE_TO

        lat, lon = np.mean(np.array(job.points), axis=0)
        common = {"query": job.name, "query_lat": f"{lat:.6f}", "query_lon": f"{lon:.6f}",
                  "query_points": str(len(job.points))}
        if job.mode == SimilarityMode.ANALOGUES:
            write_geotiff(values, job.spec.geotransform, job.out, description="probability mass per cell",
                          metadata={**common, "mode": "analogues", "exclude_km": f"{job.exclude_km:g}",
                                    "bandwidth_km": f"{job.bandwidth_km:g}", "on_land": "yes" if job.on_land else "no"})
            feedback.pushInfo(f"Places like {job.name}: probability over GeoCLIP's photo locations, "
                              f"{values.sum():.3f} of it in the extent; the most likely cell holds {values.max():.4f}.")
            return
        # the style's range is computed here, on the values in memory, not by re-reading the file on the GUI thread
        write_geotiff(values, job.spec.geotransform, job.out, description="GeoCLIP cosine similarity",
                      metadata={**common, "mode": "raw cosine",
                                SIMILARITY_STYLE_FROM: f"{np.quantile(values, SIMILARITY_STYLE_QUANTILE):.6g}",
                                SIMILARITY_STYLE_TO: f"{values.max():.6g}"})
        feedback.pushInfo(f"Raw cosine similarity to {job.name}: min {values.min():.3f}, max {values.max():.3f}")
