"""``geoclip:placeslikehere``: a raster of how similar every place is to one point, in GeoCLIP space.

Works fully offline (location encoder only). Written and styled through the same GeoTIFF writer
and layer styling path as the geolocation heatmaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterPoint,
    QgsProcessingParameterRasterDestination,
)

from ...compat import NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR
from ...i18n import tr
from ...layers import load_on_completion
from ..base import GeoClipAlgorithm, progress_callbacks
from ..io.geometry import WGS84, representative_point
from ..io.outputs import refuse_existing, write_geotiff


@dataclass(frozen=True)
class SimilarityJob:
    """The query point, raster grid and output, read from the parameters on the main thread."""

    lat: float
    lon: float
    spec: Any  # model_utils GridSpec
    out: Path
    samples: int
    model_choices: tuple[tuple[str, Any], ...]


class PlacesLikeHere(GeoClipAlgorithm):
    """Cosine similarity of GeoCLIP GPS embeddings between a query point and every raster cell."""

    POINT = "POINT"
    LAYER = "LAYER"
    CELL_SIZE = "CELL_SIZE"
    SAMPLES = "SAMPLES"
    EXTENT = "EXTENT"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "placeslikehere"

    def displayName(self) -> str:  # noqa: N802
        return tr("Places like here (GeoCLIP similarity raster)")

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            tr("Pick a point (click on the map) or a point layer (its first, or first selected, feature). "
            "The output raster holds, for every cell, the cosine similarity in [-1, 1] between GeoCLIP's "
            "GPS embedding of the cell centre and that of your point: places the model considers alike "
            "(similar climate, landscape or culture in its training photos) score high.\n\n"
            "Each cell's value is the mean similarity over n x n points spread inside it ('Samples per cell "
            "side', default 2): the model's finest scale changes within ~100 km, so one centre sample per "
            "coarse cell would look speckled.\n\n"
            "Needs no image backbone and no network. The first query at a given cell size and sampling encodes "
            "the grid once (about 5,000-10,000 points per second on a 2-core CPU) and caches it; later queries "
            "are instant.")
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterPoint(self.POINT, tr("Query point (any CRS)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LAYER, tr("…or the first (selected) feature of a layer"), [SOURCE_VECTOR],
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.CELL_SIZE, tr("Cell size (degrees)"), NUMBER_DOUBLE,
            defaultValue=1.0, minValue=0.01, maxValue=10.0))
        samples = QgsProcessingParameterNumber(
            self.SAMPLES, tr("Samples per cell side (n x n points averaged per cell)"),
            NUMBER_INTEGER, defaultValue=2, minValue=1, maxValue=4)
        samples.setHelp("1: the cell centre only (fast, speckled at coarse cells); 2 or more: the mean over n x n "
                        "points in the cell, n² times the encoding on the first query at a cell size.")
        self.addParameter(samples)
        self.addParameter(QgsProcessingParameterExtent(
            self.EXTENT, tr("Extent (empty: the whole world; any CRS)"), optional=True))
        self.add_model_parameters(image_side=False)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, tr("Similarity raster")))

    def _query(self, parameters, context) -> tuple[float, float]:
        if parameters.get(self.POINT) not in (None, ""):
            point = self.parameterAsPoint(parameters, self.POINT, context, WGS84)
            return point.y(), point.x()
        source = self.parameterAsSource(parameters, self.LAYER, context)
        if source is None:
            raise QgsProcessingException("Give a query point (click on the map) or a layer with a feature.")
        transform = QgsCoordinateTransform(source.sourceCrs(), WGS84, context.transformContext())
        for feature in source.getFeatures(QgsFeatureRequest().setLimit(50)):
            geom = representative_point(feature.geometry())
            if geom is None:
                continue
            geom.transform(transform)
            point = geom.asPoint()
            return point.y(), point.x()
        raise QgsProcessingException(f"Layer '{source.sourceName()}' has no feature with a geometry to use as query.")

    def prepare(self, parameters, context, feedback) -> SimilarityJob:
        import numpy as np

        from model_utils.geo import invalid_latlon

        lat, lon = self._query(parameters, context)
        if invalid_latlon(np.array([[lat, lon]]))[0]:
            raise QgsProcessingException(f"The query point ({lat:.4f}, {lon:.4f}) is outside WGS84 lat/lon ranges.")
        out = Path(self.parameterAsOutputLayer(parameters, self.OUTPUT, context))
        if out.suffix.lower() not in (".tif", ".tiff"):
            raise QgsProcessingException(f"The similarity raster is a GeoTIFF: use a .tif name, not {out.name}")
        refuse_existing(out)
        return SimilarityJob(lat, lon, self.grid_spec(parameters, context, self.EXTENT, self.CELL_SIZE), out,
                             self.parameterAsInt(parameters, self.SAMPLES, context),
                             tuple(sorted(self.model_choices(parameters, context).items())))

    def process(self, parameters, context, feedback):
        import numpy as np

        job: SimilarityJob = self.job
        lat, lon, spec, out = job.lat, job.lon, job.spec, job.out
        model = self.load_model(dict(job.model_choices), feedback)
        from model_utils.errors import Canceled, GeoClipError
        from model_utils.maps.similarity import similarity_grid

        progress, is_canceled = progress_callbacks(feedback, 0, 95)
        try:
            values = similarity_grid(model, lat, lon, spec, samples=job.samples, progress=progress,
                                     is_canceled=is_canceled)
        except Canceled as exc:
            raise QgsProcessingException("Canceled: no raster was written.") from exc
        except GeoClipError as exc:
            raise QgsProcessingException(str(exc)) from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        from ...layers import SIMILARITY_STYLE_FROM, SIMILARITY_STYLE_QUANTILE, SIMILARITY_STYLE_TO

        # the style's range is computed here, on the values in memory, not by re-reading the file on the GUI thread
        write_geotiff(values, spec.geotransform, out, description=tr("GeoCLIP cosine similarity"),
                      metadata={"query_lat": f"{lat:.6f}", "query_lon": f"{lon:.6f}",
                                SIMILARITY_STYLE_FROM: f"{np.quantile(values, SIMILARITY_STYLE_QUANTILE):.6g}",
                                SIMILARITY_STYLE_TO: f"{values.max():.6g}"})
        feedback.pushInfo(f"Similarity to ({lat:.4f}, {lon:.4f}): min {values.min():.3f}, max {values.max():.3f}")
        if context.willLoadLayerOnCompletion(str(out)):  # the user asked to open the output
            load_on_completion(context, str(out), f"Places like ({lat:.2f}, {lon:.2f})",
                               "GeoCLIP places like here", "similarity", output_name=self.OUTPUT, raster=True)
        return {self.OUTPUT: str(out)}
