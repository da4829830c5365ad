"""One input's answer from its prediction and a run's options: the top-k at the run's temperature, the probability
raster, its credible regions, and with a true position the error and whether each region holds it.

The QGIS run, the batch job's workers and scripts all call this, so a photo gets the same answer from the
toolbox, the dock, a cluster or ``prediction_regions``; they only write (or draw) what it returns. It touches no
file and knows no Qt: it takes plain arrays and returns frozen data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from .constants import WORLD_BANDWIDTH_KM
from .evaluation.calibration import tempered
from .maps.grid import GridSpec
from .maps.heatmap import ProbabilityGrid, probability_grid
from .maps.regions import DEFAULT_LEVELS, CredibleRegion, RegionCells, check_levels, region_cells, region_polygon


@dataclass(frozen=True)
class AnalysisOptions:
    """How a run turns each prediction into its answer (the same for every input of the run)."""

    temperature: float = 1.0  # on the logits: 1 is the model as trained
    spec: GridSpec | None = None  # the probability raster's grid; None: no raster and no regions
    bandwidth_km: float = WORLD_BANDWIDTH_KM  # the kernel's standard deviation on the sphere
    density: bool = False  # the raster holds probability per km² instead of mass per cell
    levels: tuple[float, ...] = ()  # credible region levels (each strictly between 0 and 1)
    land: Any = None  # as probability_grid's: a LandMask, True (load the default), None/False (land and sea alike)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"the temperature must be above 0, got {self.temperature}")
        if self.levels:
            object.__setattr__(self, "levels", tuple(sorted(check_levels(self.levels))))


@dataclass(frozen=True)
class PhotoAnalysis:
    """One input's answer. ``prediction`` is at the run's temperature (its top-k order is the model's);
    ``model_probs`` are the model's own probabilities, kept for a temperature fit."""

    prediction: Any  # model_utils Prediction (or a FusedPrediction over gallery + reference positions)
    support_latlon: np.ndarray | None = None  # the points ``prediction.gallery_probs`` are over
    model_probs: np.ndarray | None = None
    grid: ProbabilityGrid | None = None
    regions: tuple[RegionCells, ...] = ()
    truth_inside: tuple[bool | None, ...] = ()  # per region: holds the true position (None without one)

    @property
    def source(self) -> str:
        return self.prediction.source

    @property
    def ok(self) -> bool:
        return self.prediction.error is None

    @property
    def error(self) -> str | None:
        return self.prediction.error

    @property
    def gps(self) -> tuple[float, float] | None:
        return self.prediction.gps

    @property
    def error_km(self) -> float | None:
        """The best guess's geodesic distance to the true position; None without one."""
        errors = self.prediction.errors_km
        return None if errors is None else float(errors[0])

    def report_row(self) -> dict:
        """The accuracy report's row of this input (those without a true position are counted as left out)."""
        pred, gps = self.prediction, self.gps
        return dict(photo=pred.source, pred_lat=float(pred.lat[0]), pred_lon=float(pred.lon[0]),
                    true_lat=None if gps is None else gps[0], true_lon=None if gps is None else gps[1],
                    error_km=self.error_km, prob=float(pred.prob[0]),
                    regions=tuple((r.level, r.area_km2, inside) for r, inside in zip(self.regions, self.truth_inside)))


def truth_inside(mask: np.ndarray, spec: GridSpec, gps: tuple[float, float] | None) -> bool | None:
    """Does a region (its cell mask on ``spec``) contain the true position? None without one; False outside the
    raster's extent. Whole cells, edges included."""
    if gps is None:
        return None
    lat, lon = gps
    if not (spec.ymin <= lat <= spec.ymax and spec.xmin <= lon <= spec.xmax):
        return False
    row = min(int((spec.ymax - lat) // spec.cell_size), spec.height - 1)
    col = min(int((lon - spec.xmin) // spec.cell_size), spec.width - 1)
    return bool(mask[row, col])


def analyse(pred: Any, support_latlon: np.ndarray, options: AnalysisOptions) -> PhotoAnalysis:
    """The answer for one prediction whose ``gallery_probs`` are over ``support_latlon`` (a failed prediction
    comes back as it is)."""
    if getattr(pred, "error", None) is not None:
        return PhotoAnalysis(pred)
    model_probs = np.asarray(pred.gallery_probs)
    if model_probs.shape != (len(support_latlon),):
        raise ValueError(f"the prediction has {model_probs.size} gallery probabilities but the gallery has "
                         f"{len(support_latlon)} points (was gallery_probs dropped?)")
    if options.temperature != 1.0:  # the same guesses, their probabilities spread or sharpened
        probs = tempered(model_probs, options.temperature)
        pred = dataclasses.replace(pred, gallery_probs=probs, prob=probs[pred.indices])
    if options.spec is None:
        return PhotoAnalysis(pred, support_latlon, model_probs)
    grid = probability_grid(support_latlon[:, 0], support_latlon[:, 1], pred.gallery_probs, options.spec,
                            bandwidth_km=options.bandwidth_km, density=options.density, land=options.land)
    regions = region_cells(grid.values, options.spec, options.levels, density=options.density) \
        if options.levels and grid.mass > 0 else []
    gps = getattr(pred, "gps", None)
    return PhotoAnalysis(pred, support_latlon, model_probs, grid, tuple(regions),
                         tuple(truth_inside(r.mask, options.spec, gps) for r in regions))


def analyse_all(predictions: Iterable[Any], gallery_latlon: np.ndarray,
                options: AnalysisOptions) -> Iterator[PhotoAnalysis]:
    """``analyse`` for each prediction as it comes (a fused prediction brings its own support)."""
    for pred in predictions:
        support = getattr(pred, "support_latlon", None)
        yield analyse(pred, gallery_latlon if support is None else support, options)


def prediction_regions(pred: Any, gallery_latlon: np.ndarray, spec: GridSpec,
                       levels: Sequence[float] = DEFAULT_LEVELS, bandwidth_km: float = 50.0,
                       land: Any = True) -> list[CredibleRegion]:
    """A prediction's credible regions as shapely polygons, from the same raster the plugin draws (``land``: as
    ``probability_grid``'s; True, the plugin's default, keeps the probability on land cells)."""
    options = AnalysisOptions(spec=spec, bandwidth_km=bandwidth_km, levels=tuple(levels), land=land)
    support = getattr(pred, "support_latlon", None)
    if not hasattr(pred, "gallery_probs"):  # plain probabilities
        pred = SimpleNamespace(gallery_probs=np.asarray(pred))
    return [region_polygon(cells) for cells in analyse(pred, gallery_latlon if support is None else support,
                                                        options).regions]
