"""The ``geoclip`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..guard import guarded
from ..i18n import tr
from ..paths import resource


def algorithm_classes() -> list:
    """Every algorithm the provider offers (imports are cheap: no torch at this point)."""
    from .algorithms.downstream_classifier import DownstreamClassifier
    from .algorithms.evaluate_geolocation import EvaluateGeolocation
    from .algorithms.geolocate_photos import GeolocatePhotos
    from .algorithms.geolocate_text import GeolocateText
    from .algorithms.gps_embeddings import GpsEmbeddings
    from .algorithms.places_like_here import PlacesLikeHere
    from .algorithms.ray_cluster import GeolocateRayCluster

    return [GeolocatePhotos, GeolocateText, PlacesLikeHere, DownstreamClassifier, EvaluateGeolocation, GpsEmbeddings,
            GeolocateRayCluster]


class GeoClipProvider(QgsProcessingProvider):
    """Groups GeoCLIP algorithms under id ``geoclip`` (e.g. ``geoclip:geolocatephotos``)."""

    def id(self) -> str:  # noqa: A003 - QGIS API name
        return "geoclip"

    def name(self) -> str:
        return "GeoCLIP"

    def longName(self) -> str:  # noqa: N802
        return tr("GeoCLIP photo geolocation and GPS embeddings")

    def icon(self) -> QIcon:
        return QIcon(resource("icon.svg"))

    @guarded
    def loadAlgorithms(self) -> None:  # noqa: N802
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
