"""City-scale zoom: a dense grid gallery over the raster extent, shared by photo and text geolocation."""

from __future__ import annotations

from qgis.core import QgsProcessingException


def regional_gallery(alg, parameters, context, feedback):
    """The dense grid gallery over the raster extent, or None for GeoCLIP's worldwide gallery."""
    if alg.parameterAsEnum(parameters, alg.GALLERY, context) != 1:
        return None
    if parameters.get(alg.EXTENT) in (None, ""):
        raise QgsProcessingException(
            "A regional gallery needs a raster extent: zoom the map to the city or region and use the map "
            "canvas extent (or draw one), or choose GeoCLIP's worldwide gallery.")
    spacing = alg.parameterAsDouble(parameters, alg.GALLERY_SPACING, context) or \
        alg.parameterAsDouble(parameters, alg.CELL_SIZE, context)
    spec = alg.grid_spec(parameters, context, alg.EXTENT, alg.CELL_SIZE)  # the raster's snapped extent
    from model_utils.errors import GeoClipError
    from model_utils.geo import geodesic_km
    from model_utils.model.gallery import Gallery

    try:
        gallery = Gallery.grid(spacing, (spec.xmin, spec.ymin, spec.xmax, spec.ymax),
                               name=f"regional-{spacing:g}deg")
    except GeoClipError as exc:
        raise QgsProcessingException(str(exc)) from exc
    feedback.pushInfo(
        f"Regional gallery: {len(gallery):,} points every {spacing:g}° over {spec.xmin:g}, {spec.ymin:g} – "
        f"{spec.xmax:g}, {spec.ymax:g}. Probabilities are conditional on the place being inside this extent.")
    mid = (spec.ymin + spec.ymax) / 2
    width_km = min(float(geodesic_km(spec.ymin, spec.xmin, spec.ymax, spec.xmin)),
                   float(geodesic_km(mid, spec.xmin, mid, spec.xmax)))
    bandwidth = alg.parameterAsDouble(parameters, alg.BANDWIDTH, context)
    if bandwidth > width_km / 4:
        feedback.reportError(
            f"Kernel bandwidth {bandwidth:g} km is wide for an extent about {width_km:.0f} km across: much of "
            f"the probability spreads outside the raster. For city scale use a bandwidth near the gallery "
            f"spacing (about {float(geodesic_km(mid, spec.xmin, mid, spec.xmin + spacing)):.1f} km here), "
            "or 0.", False)
    return gallery
