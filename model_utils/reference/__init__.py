"""Reference photos: the analyst's own geotagged photos, matched against each new photo and fused with GeoCLIP.

No Qt, no qgis. ``build_collection`` embeds a folder, table or list of geotagged photos once into an index
file (incremental, keyed by content and model); ``fit_collection`` fits the fusion by leave-one-out and
reports how much the collection helps; ``ReferenceGeolocator`` geolocates photos with it::

    from model_utils import GeoCLIP
    from model_utils.reference import ReferenceGeolocator, build_collection

    model = GeoCLIP.from_pretrained()
    built = build_collection(model, "/data/field_2024")          # EXIF GPS; or a .csv/.parquet, or (path, lat, lon)s
    print(built.text()); print(built.fit.table())
    preds = ReferenceGeolocator(model, built.collection).predict(["new.jpg"], top_k=5)
    preds[0].lat, preds[0].matches, preds[0].weight, preds[0].geoclip.lat
"""

from __future__ import annotations

_EXPORTS = {
    "build_collection": ".build", "BuildReport": ".build",
    "ReferenceCollection": ".index", "CollectionError": ".index", "load_collection": ".index",
    "fit_collection": ".fit", "FitResult": ".fit", "FitError": ".fit",
    "FusionParams": ".fusion", "FusedPrediction": ".fusion", "Match": ".fusion",
    "ReferenceGeolocator": ".geolocator",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'model_utils.reference' has no attribute {name!r}")
