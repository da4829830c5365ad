"""Which of a geolocation run's files become map layers: a handful per run, whatever its size.

A run writes one probability raster per photo or query (1,000 photos: 1,000 GeoTIFFs). They stay on disk:
the run loads as its top-k points, truth lines, credible regions and one raster layer (the first photo's),
and the results browser shows another photo by pointing that one raster layer at its file. One plan serves
every way a run reaches the map: Processing's own loader after the dock, the toolbox, a batch or a model
(:func:`load_run_on_completion`), and a run folder opened from disk (:func:`open_run`: a ``qgis_process``
run, or a run whose group was deleted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsLayerTreeGroup,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .i18n import tr
from .layers import RUN_GROUP_PREFIX, GroupAndStyle, load_on_completion, run_group_of
from .processing.io import run_layout as layout
from .run_index import RunIndex, read_run

RASTER_LAYERS_PER_RUN = 1  # the first photo's on completion; the browser points it at the photo looked at


@dataclass(frozen=True)
class RunOutputs:
    """What a geolocation run wrote, as its ``_outputs`` reports it."""

    folder: Path
    group: str  # the layer-tree group's name
    points: str  # predictions.gpkg
    rasters: list[tuple[str, str]]  # (layer name, GeoTIFF path) per photo or query, in the run's order
    regions: bool  # the GeoPackage has credible regions
    truth: bool  # ... and lines to the EXIF positions
    matches: bool = False  # ... and the matched reference photos with the lines to them


@dataclass(frozen=True)
class PlannedLayer:
    source: str
    name: str
    style: str  # a key of layers.STYLERS
    raster: bool


def planned_layers(run: RunOutputs) -> list[PlannedLayer]:
    """The run's layers, bottom to top: one raster, the regions, the truth lines, the matched reference photos
    and the lines to them (a run with reference photos), the points."""
    plan = [PlannedLayer(path, name, "probability", True) for name, path in run.rasters[:RASTER_LAYERS_PER_RUN]]
    if run.regions:
        plan.append(PlannedLayer(f"{run.points}|layername={layout.LAYER_REGIONS}", tr("Credible regions"), "regions",
                                 False))
    if run.truth:
        plan.append(PlannedLayer(f"{run.points}|layername={layout.LAYER_TRUTH}", tr("Error to EXIF position"), "truth",
                                 False))
    if run.matches:
        plan += [PlannedLayer(f"{run.points}|layername={layout.LAYER_MATCH_LINES}",
                              tr("Best guess to matched references"), "match_lines", False),
                 PlannedLayer(f"{run.points}|layername={layout.LAYER_MATCHES}", tr("Matched reference photos"),
                              "matches", False)]
    plan.append(PlannedLayer(f"{run.points}|layername={layout.LAYER_PREDICTIONS}", tr("Top-k predictions"), "points",
                             False))
    return plan


def load_run_on_completion(context: QgsProcessingContext, run: RunOutputs) -> None:
    """Ask Processing to load the run's handful of layers after it ends, styled, into one group."""
    for layer in planned_layers(run):
        load_on_completion(context, layer.source, layer.name, run.group, layer.style, raster=layer.raster,
                           run_id=str(run.folder))


def outputs_of(index: RunIndex) -> RunOutputs:
    """The outputs of a run read back from its folder (its group named for the folder and its size)."""
    rasters = [(index.layer_name(row), row.raster) for row in index.rows if row.raster]
    noun = tr("photos") if index.photos else tr("queries")
    return RunOutputs(folder=index.folder, group=f"{RUN_GROUP_PREFIX}{index.folder.name} ({len(index.rows)} {noun})",
                      points=str(index.points), rasters=rasters, regions=layout.LAYER_REGIONS in index.layers,
                      truth=layout.LAYER_TRUTH in index.layers, matches=layout.LAYER_MATCHES in index.layers)


class RunLayerError(RuntimeError):
    """A run's file could not be opened as a layer (moved, deleted, unreadable); the message names it."""


def open_run(project: QgsProject, folder: str | Path) -> QgsLayerTreeGroup:
    """Load the run in ``folder`` as the same handful of layers a finished run gets (its group if it has one)."""
    index = read_run(folder)
    group = run_group_of(project, index.folder)
    if group is not None:
        return group
    run = outputs_of(index)
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()
    for planned in planned_layers(run):
        layer = (QgsRasterLayer(planned.source, planned.name, "gdal") if planned.raster
                 else QgsVectorLayer(planned.source, planned.name, "ogr"))
        if not layer.isValid():
            raise RunLayerError(f"{planned.source} could not be opened as a layer; was the run folder changed?")
        project.addMapLayer(layer)
        GroupAndStyle(run.group, planned.style, str(run.folder)).postProcessLayer(layer, context, feedback)
    return run_group_of(project, index.folder)
