"""What photo and text geolocation share before any work: the kind of input, the frozen job read from the
parameters on the main thread, and the refusals (bad parameters, no room on the output disk) that come before it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingException

from model_utils.constants import WORLD_BANDWIDTH_KM

from .. import definitions as d
from ..base import GeoClipAlgorithm
from ..io.outputs import ensure_writable_folder
from ..io.run_space import refuse_without_space
from .parameters import parse_levels
from .references import reference_index
from .regional_gallery import regional_gallery


@dataclass(frozen=True)
class InputKind:
    """What differs between geolocating photos and text queries."""

    noun: str  # "photo" / "query": parameter labels, log lines, raster metadata
    plural: str  # "photos" / "queries": labels
    count_output: str  # the output id counting what was geolocated (N_PHOTOS / N_QUERIES)
    default_batch: int
    source_fields: tuple[str, str]  # the points layer's (input, short name) fields
    label: Callable[[str], str]  # an input's short name (logs, legend, the name field)
    stem: Callable[[str], str]  # its raster's file name, before it is made safe and unique
    group_title: Callable[[dict], str]  # the layer group's name, from the run's result
    load_tower: Callable[..., None]  # (model, progress, is_canceled): the CLIP tower this kind needs
    predictions: Callable[..., Any]  # (model, items, top_k, batch, progress, is_canceled, gallery)

    def count(self, n: int) -> str:
        """'1 query', '3 queries': log lines read as English."""
        return f"{n} {self.noun if n == 1 else self.plural}"


@dataclass(frozen=True)
class GeolocationJob:
    """Everything a run needs, read from the parameters on the main thread."""

    items: tuple[str, ...]
    top_k: int
    spec: Any  # model_utils GridSpec of the rasters, or None when no rasters are written
    bandwidth_km: float
    density: bool
    batch: int
    out_root: Path
    regional: Any  # a model_utils Gallery over the extent, or None for the worldwide one
    levels: tuple[float, ...]  # credible region levels (empty: none), with rasters only
    temperature: float  # on the logits: 1 = the model as trained
    fit: bool  # fit a temperature on the photos with EXIF GPS
    model_choices: tuple[tuple[str, Any], ...]  # for shared_model(**dict(...))
    on_land: bool = True  # each gallery point's kernel renormalised over land cells
    skipped: tuple[str, ...] = ()  # the folder scan's lines about what it left out, by reason
    n_skipped: int = 0  # files of the folder that are not photos
    references: str | None = None  # a reference collection's index: predictions fused with it (photos only)

    def analysis_options(self, land: Any = None):
        """The per-input analysis of this run (model_utils ``AnalysisOptions``), with the run's land mask."""
        from model_utils.analysis import AnalysisOptions

        return AnalysisOptions(temperature=self.temperature, spec=self.spec, bandwidth_km=self.bandwidth_km,
                               density=self.density, levels=self.levels, land=land)


def prepare(alg: GeoClipAlgorithm, kind: InputKind, items: list[str], parameters, context,
            feedback, scan=None) -> GeolocationJob:
    """The frozen job for ``items`` (and the folder ``scan`` they came from, if any); bad parameters, and an
    output disk without room for the run, are refused here, before any work."""
    write_rasters = alg.parameterAsBool(parameters, d.WRITE_RASTERS, context)
    given = parameters.get(d.BANDWIDTH_KM) not in (None, "")
    bandwidth = alg.parameterAsDouble(parameters, d.BANDWIDTH_KM, context) if given else None
    regional = None
    if alg.parameterAsEnum(parameters, d.GALLERY, context) == d.GalleryMode.REGIONAL:
        if parameters.get(d.EXTENT) in (None, ""):
            raise QgsProcessingException(
                "A regional gallery needs a raster extent: zoom the map to the city or region and use the map "
                "canvas extent (or draw one), or choose GeoCLIP's worldwide gallery.")
        regional, bandwidth = regional_gallery(alg.grid_spec(parameters, context, d.EXTENT, d.CELL_SIZE),
                                               alg.parameterAsDouble(parameters, d.GALLERY_SPACING, context),
                                               bandwidth, feedback)
    levels = parse_levels(alg.parameterAsString(parameters, d.CREDIBLE_LEVELS, context)) if write_rasters else ()
    out_root = ensure_writable_folder(alg.parameterAsString(parameters, d.OUTPUT_FOLDER, context))
    job = GeolocationJob(
        items=tuple(items), top_k=alg.parameterAsInt(parameters, d.TOP_K, context),
        spec=alg.grid_spec(parameters, context, d.EXTENT, d.CELL_SIZE) if write_rasters else None,
        bandwidth_km=WORLD_BANDWIDTH_KM if bandwidth is None else bandwidth,
        density=alg.parameterAsBool(parameters, d.DENSITY, context),
        batch=alg.parameterAsInt(parameters, d.BATCH_SIZE, context), out_root=out_root, regional=regional,
        levels=levels,
        temperature=alg.parameterAsDouble(parameters, d.TEMPERATURE, context) or 1.0,
        fit=alg.parameterAsBool(parameters, d.FIT_TEMPERATURE, context),
        model_choices=tuple(sorted(alg.model_choices(parameters, context).items())),
        on_land=alg.parameterAsBool(parameters, d.ON_LAND, context),
        skipped=tuple(scan.skipped_lines()) if scan is not None else (),
        n_skipped=scan.n_skipped if scan is not None else 0,
        references=reference_index(alg, parameters, context, regional))
    needed = refuse_without_space(job)
    feedback.pushInfo(f"{kind.count(len(items))} to geolocate; outputs under {out_root} (about {needed})")
    return job
