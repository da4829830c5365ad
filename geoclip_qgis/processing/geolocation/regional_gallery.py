"""City-scale zoom: a dense grid gallery over the raster extent, shared by photo and text geolocation."""

from __future__ import annotations

from qgis.core import QgsProcessingException


def regional_gallery(spec, spacing: float, bandwidth_km: float | None, feedback) -> tuple[object, float]:
    """(a dense grid gallery over the raster extent ``spec`` (a GridSpec) every ``spacing`` degrees (0: the
    cell size), the kernel bandwidth in km). With no bandwidth given it is the gallery's spacing in km (the
    east-west spacing at the extent's middle latitude, the smaller one): a city-scale kernel for a city-scale
    grid. A given bandwidth wide for the extent is kept, with a warning that says what to set."""
    spacing = spacing or spec.cell_size
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
    spacing_km = float(geodesic_km(mid, spec.xmin, mid, spec.xmin + spacing))
    if bandwidth_km is None:
        feedback.pushInfo(f"Kernel bandwidth {spacing_km:.2f} km: the regional gallery's spacing (set one to "
                          "override).")
        return gallery, spacing_km
    if bandwidth_km > width_km / 4:
        feedback.reportError(
            f"Kernel bandwidth {bandwidth_km:g} km is wide for an extent about {width_km:.0f} km across: much of "
            f"the probability spreads outside the raster. For city scale use a bandwidth near the gallery "
            f"spacing (about {spacing_km:.1f} km here), leave it empty to get exactly that, or use 0.", False)
    return gallery, bandwidth_km
