"""The ``geoclip`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..guard import guarded
from ..i18n import tr
from ..paths import resource


def algorithm_classes() -> list:
    """Every algorithm the provider offers (imports are cheap: no torch at this point)."""
    from .algorithms.build_references import BuildReferences
    from .algorithms.downstream_classifier import DownstreamClassifier
    from .algorithms.evaluate_geolocation import EvaluateGeolocation
    from .algorithms.geolocate_photos import GeolocatePhotos
    from .algorithms.geolocate_text import GeolocateText
    from .algorithms.gps_embeddings import GpsEmbeddings
    from .algorithms.places_like_here import PlacesLikeHere
    from .algorithms.ray_cluster import GeolocateRayCluster

    return [GeolocatePhotos, GeolocateText, PlacesLikeHere, DownstreamClassifier, EvaluateGeolocation, GpsEmbeddings,
            GeolocateRayCluster, BuildReferences]


class GeoClipProvider(QgsProcessingProvider):
    """Groups GeoCLIP algorithms under id ``geoclip`` (e.g. ``geoclip:geolocatephotos``).

    ``refused`` (why GeoCLIP's own ``model_utils`` cannot be imported, e.g. a foreign package of that name
    comes first): the provider stays, with no algorithm and that message, and imports nothing of
    ``model_utils`` (every algorithm module does)."""

    def __init__(self, refused: str = "") -> None:
        super().__init__()
        self.refused = refused

    def id(self) -> str:  # noqa: A003 - QGIS API name
        return "geoclip"

    def name(self) -> str:
        return "GeoCLIP"

    def longName(self) -> str:  # noqa: N802
        if self.refused:
            return tr("GeoCLIP (unavailable: see the message log, tab GeoCLIP)")
        return tr("GeoCLIP photo geolocation and GPS embeddings")

    def warningMessage(self) -> str:  # noqa: N802
        return self.refused

    def icon(self) -> QIcon:
        return QIcon(resource("icon.svg"))

    @guarded
    def loadAlgorithms(self) -> None:  # noqa: N802
        if self.refused:
            return
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
