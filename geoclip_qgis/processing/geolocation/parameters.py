"""The parameters photo and text geolocation share (names and defaults from ``definitions``) and the outputs
every run reports; split from ``geolocation`` (the run) to keep each module to one job.
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFolder,
    QgsProcessingOutputHtml,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from model_utils.constants import FIT_MIN_PHOTOS

from ...compat import FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR_POINT
from ...i18n import tr
from .. import definitions as d

GALLERY_LABELS = {d.GalleryMode.WORLD: "GeoCLIP's 100K worldwide gallery",
                  d.GalleryMode.REGIONAL: "Regional: a dense grid over the raster extent (city-scale zoom)"}


def levels_parameter(help_text: str) -> QgsProcessingParameterString:
    """The credible levels, as every algorithm that draws regions takes them (local runs and the Ray job)."""
    levels = QgsProcessingParameterString(d.CREDIBLE_LEVELS, tr("Credible regions at these levels (empty: none)"),
                                          defaultValue=d.DEFAULT_CREDIBLE_LEVELS, optional=True)
    levels.setHelp(help_text)
    return levels


def temperature_parameter(help_text: str) -> QgsProcessingParameterNumber:
    """The temperature on the logits, as every algorithm that answers with probabilities takes it."""
    temperature = QgsProcessingParameterNumber(
        d.TEMPERATURE, tr("Temperature on the logits (1: as trained; from a fit on your geotagged photos)"),
        NUMBER_DOUBLE, defaultValue=d.DEFAULT_TEMPERATURE, minValue=0.05, maxValue=20.0)
    temperature.setHelp(help_text)
    return temperature


def batch_parameter(label: str, default: int) -> QgsProcessingParameterNumber:
    """How many inputs go through the backbone at once (memory against speed): an advanced choice."""
    batch = QgsProcessingParameterNumber(d.BATCH_SIZE, label, NUMBER_INTEGER, defaultValue=default, minValue=1,
                                         maxValue=256)
    batch.setFlags(batch.flags() | FLAG_ADVANCED)
    return batch


def add_parameters(alg, kind) -> None:
    """Top-k, raster grid, gallery, backbone and output folder, with the outputs every run reports."""
    noun, inputs = kind.noun, kind.plural.capitalize()
    alg.addParameter(QgsProcessingParameterNumber(
        d.TOP_K, tr("Top-k predictions per {noun}").format(noun=noun), NUMBER_INTEGER, defaultValue=d.DEFAULT_TOP_K,
        minValue=1, maxValue=d.MAX_TOP_K))
    alg.addParameter(QgsProcessingParameterNumber(
        d.CELL_SIZE, tr("Raster cell size (degrees)"), NUMBER_DOUBLE, defaultValue=d.DEFAULT_CELL_DEG, minValue=0.001,
        maxValue=10.0))
    bandwidth = QgsProcessingParameterNumber(
        d.BANDWIDTH_KM, tr("Kernel bandwidth (km, std. dev. on the sphere; empty: 50 km, or the regional gallery's "
                      "spacing)"), NUMBER_DOUBLE, optional=True, minValue=0.0, maxValue=5000.0)
    bandwidth.setHelp("How far each gallery point's probability is spread. Empty: 50 km over GeoCLIP's worldwide "
                      "gallery, the grid spacing over a regional gallery; 0: no spreading (each point's cell).")
    alg.addParameter(bandwidth)
    on_land = QgsProcessingParameterBoolean(
        d.ON_LAND, tr("Probability on land only (untick for photos taken at sea)"), defaultValue=True)
    on_land.setHelp("GeoCLIP's gallery holds where photos were taken: each gallery point's kernel is renormalised "
                    "over land cells (GSHHG shoreline, lakes as water), so a coastal answer keeps its mass and "
                    "bandwidth but lands on land, and credible regions stop counting sea as place. Untick it for "
                    "photos taken at sea (ships, sailing, offshore).")
    alg.addParameter(on_land)
    alg.addParameter(QgsProcessingParameterExtent(
        d.EXTENT, tr("Raster extent (empty: the whole world; any CRS)"), optional=True))
    gallery = QgsProcessingParameterEnum(d.GALLERY, tr("GPS gallery"),
                                         options=[GALLERY_LABELS[m] for m in d.GalleryMode],
                                         defaultValue=int(d.GalleryMode.WORLD))
    gallery.setHelp("Regional: rank against a grid of points over the raster extent (zoom the map to a city "
                    "and use the canvas extent); answers and rasters get the grid's resolution.")
    alg.addParameter(gallery)
    alg.addParameter(QgsProcessingParameterNumber(
        d.GALLERY_SPACING, tr("Regional gallery spacing (degrees; 0 = the raster cell size)"),
        NUMBER_DOUBLE, defaultValue=0.0, minValue=0.0, maxValue=10.0))
    alg.addParameter(QgsProcessingParameterBoolean(
        d.DENSITY, tr("Write probability density per km² instead of mass per cell"), defaultValue=False))
    alg.addParameter(QgsProcessingParameterBoolean(
        d.WRITE_RASTERS, tr("Write a probability raster per {noun}").format(noun=noun), defaultValue=True))
    alg.addParameter(levels_parameter(
        f"Per {noun}, the smallest area holding that share of its raster's probability, as polygons (layer "
        "credible_regions: level, area in km², parts, the probability it holds). Levels between 0 and 1, separated "
        "by commas; needs the rasters."))
    alg.addParameter(temperature_parameter(
        "Above 1 spreads each answer's probability (the model was over-confident on your photos), below 1 sharpens "
        "it. The top-k order never changes. 'Fit a temperature' finds the value."))
    fit = QgsProcessingParameterBoolean(
        d.FIT_TEMPERATURE, tr("Fit a temperature on the photos with EXIF GPS (report coverage before and after)"),
        defaultValue=False)
    fit.setHelp(f"Needs at least {FIT_MIN_PHOTOS} photos with EXIF GPS: two thirds fit the temperature (maximum "
                "likelihood of their true positions), the other third shows how many true positions fall inside "
                "the credible regions before and after. Saved as calibration.json in the run folder.")
    alg.addParameter(fit)
    alg.addParameter(batch_parameter(tr("{inputs} per batch").format(inputs=inputs), kind.default_batch))
    alg.add_model_parameters(image_side=True)
    alg.addParameter(QgsProcessingParameterFolderDestination(
        d.OUTPUT_FOLDER, tr("Output folder (a new subfolder is made for each run)")))
    alg.addOutput(QgsProcessingOutputFolder(d.RUN_FOLDER, tr("Run folder")))
    alg.addOutput(QgsProcessingOutputVectorLayer(d.POINTS, tr("Top-k predictions"), SOURCE_VECTOR_POINT))
    alg.addOutput(QgsProcessingOutputMultipleLayers(d.RASTERS, tr("Probability rasters")))
    alg.addOutput(QgsProcessingOutputHtml(d.REPORT_HTML, tr("Accuracy report (HTML)")))
    inputs = kind.plural.capitalize()
    alg.addOutput(QgsProcessingOutputNumber(kind.count_output, tr("{inputs} geolocated").format(inputs=inputs)))
    alg.addOutput(QgsProcessingOutputNumber(d.N_FAILED, tr("{inputs} that failed").format(inputs=inputs)))
    alg.addOutput(QgsProcessingOutputString(d.ERRORS, tr("Per-{noun} errors").format(noun=noun)))
    alg.addOutput(QgsProcessingOutputNumber(d.N_SKIPPED, tr("Files of the folder that are not photos (skipped)")))
    alg.addOutput(QgsProcessingOutputString(d.SKIPPED, tr("Skipped files, by reason")))


def parse_levels(text: str) -> tuple[float, ...]:
    """'0.5, 0.9' (or '50%, 90%') -> (0.5, 0.9); a bad level is refused before any work."""
    from model_utils.maps.regions import parse_levels as levels_of

    try:
        return levels_of(text)
    except ValueError as exc:
        raise QgsProcessingException(f"Credible region levels '{text}': {exc}. Write them like 0.5, 0.9 "
                                     "(or 50%, 90%), or leave the field empty for none.") from exc
