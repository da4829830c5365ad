"""Results -> styled map layers in a layer-tree group, on the main thread.

Algorithms register their outputs with ``context.addLayerToLoadOnCompletion`` and a
``GroupAndStyle`` post-processor, so the toolbox, the batch dialog, models and the dock (which calls
Processing's own result handler) all load, group and style results the same way.
"""

from __future__ import annotations

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsColorRampLegendNodeSettings,
    QgsFeatureRequest,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsLineSymbol,
    QgsMarkerLineSymbolLayer,
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingUtils,
    QgsProject,
    QgsProperty,
    QgsRasterLayer,
    QgsRectangle,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsSymbolLayer,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

from .basemap import ensure_basemap
from .compat import RASTER_STAT_MAX, REQUEST_NO_GEOMETRY, plain
from .guard import guarded
from .paths import resource
from .reference_styles import STYLERS as REFERENCE_STYLERS
from .style_parts import add_open_photo_action, show_photos, simple_labels

PROBABILITY_STYLE = "styles/probability_raster.qml"
POINTS_STYLE = "styles/prediction_points.qml"
# Qualitative colours, one per photo or query in a run (repeats after 12)
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#65a30d",
           "#4f46e5", "#b45309", "#0d9488", "#be123c")


def _stretch_ramp(layer: QgsRasterLayer, low: float, top: float) -> None:
    """Load the shipped ramp (written for 0..1) and stretch it over ``low``..``top``."""
    layer.loadNamedStyle(resource(PROBABILITY_STYLE))
    renderer = layer.renderer()
    if not isinstance(renderer, QgsSingleBandPseudoColorRenderer):
        return
    top = top if top > low else low + 1.0
    fcn = renderer.shader().rasterShaderFunction()
    items = fcn.colorRampItemList()
    for item in items:
        item.value = low + item.value * (top - low)
        item.label = f"{item.value:.3g}"
    fcn.setColorRampItemList(items)
    fcn.setMinimumValue(low)
    fcn.setMaximumValue(top)
    fcn.setClip(True)  # below the ramp: not drawn, so the basemap shows
    legend = QgsColorRampLegendNodeSettings(fcn.legendSettings())
    legend.setMinimumLabel(f"{low:.3g}")  # the legend states the data's own range, never the file's 0..1
    legend.setMaximumLabel(f"{top:.3g}")
    fcn.setLegendSettings(legend)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(top)
    layer.triggerRepaint()


def style_probability_raster(layer: QgsRasterLayer) -> None:
    """Probability rasters: the ramp from 0 to this raster's maximum, lowest values transparent."""
    stats = layer.dataProvider().bandStatistics(1)  # with a stats argument: deprecated since 3.40
    _stretch_ramp(layer, 0.0, stats.maximumValue)


SIMILARITY_STYLE_QUANTILE = 0.9  # the ramp covers the top 10% of cells
SIMILARITY_STYLE_FROM, SIMILARITY_STYLE_TO = "style_from", "style_to"  # GeoTIFF metadata the algorithm writes
SIMILARITY_SAMPLE_CELLS = 250_000  # a file without them: its maximum from a sample of at most this many cells


def style_similarity_raster(layer: QgsRasterLayer) -> None:
    """Similarity rasters (-1..1): one ramp over the top 10% of cells, so "places like here" stand out.

    The range comes from the file's metadata (the algorithm computed it from the values it had in memory).
    A file without it (written by an older version) gets the upper half of the ramp below the maximum of a
    sample of ``SIMILARITY_SAMPLE_CELLS`` cells (QGIS reads it at a coarser resolution): never a full read of
    a raster of up to 50 M cells on the GUI thread."""
    from osgeo import gdal

    ds = gdal.Open(layer.source())  # the header only
    low = ds.GetMetadataItem(SIMILARITY_STYLE_FROM) if ds else None
    high = ds.GetMetadataItem(SIMILARITY_STYLE_TO) if ds else None
    ds = None
    if low is None or high is None:
        high = layer.dataProvider().bandStatistics(1, RASTER_STAT_MAX, QgsRectangle(),
                                                   SIMILARITY_SAMPLE_CELLS).maximumValue
        low = high / 2
    _stretch_ramp(layer, float(low), float(high))


def category_tops(layer: QgsVectorLayer, label: str) -> dict[str, float]:
    """The best probability of each value of ``label`` (a photo's or query's name: the points' categories)."""
    best: dict[str, float] = {}
    request = QgsFeatureRequest().setFlags(REQUEST_NO_GEOMETRY)
    request.setSubsetOfAttributes([label, "prob"], layer.fields())
    for feature in layer.getFeatures(request):
        key, prob = plain(feature[label]), plain(feature["prob"])
        if key is not None and prob is not None:
            best[str(key)] = max(best.get(str(key), 0.0), float(prob))
    return best


def relative_size(top: float) -> QgsProperty:
    """Marker size (2.5 to 7.5 mm) growing with probability relative to the best guess of the same photo or
    query, whose probability ``top`` is written into its category's expression as a number.

    Not ``maximum("prob", group_by:=...)``: an aggregate makes every canvas render thread read the live layer
    (QGIS's aggregate functions are not thread safe), and a layer removed while the canvas drew it was read
    after it had been freed: memory corruption that crashed QGIS 3.40 later, in the garbage collector, and a
    render thread waiting for the main thread hung the exit. Nor one expression with a map of every photo's
    maximum: evaluated per point, a run of 1,000 photos took seconds to draw. The maxima are read here, on the
    main thread, one constant per category."""
    if not top > 0:
        return QgsProperty.fromValue(5.0)
    return QgsProperty.fromExpression(f'2.5 + 5 * sqrt(coalesce("prob", 0) / {top!r})')


LABELS_ALL_MAX = 500  # points; above that, rank labels only for the photo looked at in the results browser


def label_points(layer: QgsVectorLayer, where: str = "") -> None:
    """Rank labels on the points ``where`` picks (one photo's or query's guesses), or on every point of a run small
    enough: placing labels is the costly part of drawing the points (5,000 over the world took 25 s here)."""
    labeling = layer.labeling()
    if not isinstance(labeling, QgsVectorLayerSimpleLabeling):
        return
    settings = labeling.settings()
    shown = where or ("TRUE" if layer.featureCount() <= LABELS_ALL_MAX else "FALSE")
    properties = settings.dataDefinedProperties()
    properties.setProperty(QgsPalLayerSettings.Property.Show, QgsProperty.fromExpression(shown))
    settings.setDataDefinedProperties(properties)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.triggerRepaint()


def style_prediction_points(layer: QgsVectorLayer) -> None:
    """A colour per photo or query (the legend names each), sized by probability, rank 1 a star and
    labelled by rank; the map tip shows the photo itself, an action opens it at full size."""
    layer.loadNamedStyle(resource(POINTS_STYLE))
    names = layer.fields().names()
    source, label = ("photo", "photo_name") if "photo" in names else ("query", "label")  # see prediction_outputs
    base = layer.renderer().symbol() if isinstance(layer.renderer(), QgsSingleSymbolRenderer) else None
    if base is not None:
        values = sorted(str(v) for v in layer.uniqueValues(layer.fields().indexOf(label)) if v is not None)
        categories = []
        tops = category_tops(layer, label)
        for i, value in enumerate(values):
            symbol = base.clone()
            marker = symbol.symbolLayer(0)
            marker.setDataDefinedProperty(QgsSymbolLayer.Property.PropertySize, relative_size(tops.get(value, 0.0)))
            # rank 1 stays a star and keeps a gold outline; the fill is this photo's colour
            marker.setDataDefinedProperty(QgsSymbolLayer.Property.PropertyFillColor, QgsProperty())
            marker.setDataDefinedProperty(QgsSymbolLayer.Property.PropertyStrokeColor, QgsProperty.fromExpression(
                """CASE WHEN "rank" = 1 THEN '#facc15' ELSE '#0f172a' END"""))
            marker.setDataDefinedProperty(QgsSymbolLayer.Property.PropertyStrokeWidth, QgsProperty.fromExpression(
                """CASE WHEN "rank" = 1 THEN 0.8 ELSE 0.2 END"""))
            symbol.setColor(QColor(PALETTE[i % len(PALETTE)]))
            categories.append(QgsRendererCategory(value, symbol, value))
        renderer = QgsCategorizedSymbolRenderer(label, categories)
        old = layer.renderer()
        renderer.setOrderBy(old.orderBy())
        renderer.setOrderByEnabled(old.orderByEnabled())
        layer.setRenderer(renderer)
    label_points(layer)
    layer.setDisplayExpression(f'"{label}" || \' #\' || "rank"')
    image = (f'<br><img src="file://[% "{source}" %]" width="240">' if source == "photo" else "")
    layer.setMapTipTemplate(
        f'<b>[% "{label}" %]</b> — guess #[% "rank" %]<br>probability [% format_number("prob", 4) %]'
        '[% CASE WHEN "error_km" IS NOT NULL THEN \'<br>error \' || format_number("error_km", 1) || \' km\' '
        "ELSE '' END %]" + image)
    if source == "photo":
        show_photos(layer, source)  # identify results and the attribute form show the photo, not only its path
    layer.triggerRepaint()


def style_truth_lines(layer: QgsVectorLayer) -> None:
    """Dashed red line from each top-1 guess to the photo's EXIF position (a cross), labelled in km."""
    line = QgsLineSymbol.createSimple({"line_color": "#dc2626", "line_style": "dash", "line_width": "0.6"})
    end_marker = QgsMarkerLineSymbolLayer.create({"placement": "lastvertex", "rotate": "0"})
    end_marker.setSubSymbol(QgsMarkerSymbol.createSimple(
        {"name": "cross2", "color": "#dc2626", "outline_color": "#dc2626", "outline_width": "0.8", "size": "4"}))
    line.appendSymbolLayer(end_marker)
    layer.setRenderer(QgsSingleSymbolRenderer(line))
    simple_labels(layer, "format_number(\"error_km\", 0) || ' km'", 8, "#7f1d1d")
    layer.setMapTipTemplate('<b>[% "photo_name" %]</b><br>EXIF position [% format_number("true_lat", 4) %], '
                            '[% format_number("true_lon", 4) %]<br>top-1 error [% format_number("error_km", 1) %] km')
    layer.triggerRepaint()


def style_credible_regions(layer: QgsVectorLayer) -> None:
    """Outlines only, so the raster shows through, in each photo's (or query's) colour of the points layer
    (the legend names them); the widest level in the layer dashed, the others solid (by default 90% dashed,
    50% solid); the map tip gives level and area."""
    names = layer.fields().names()
    label = "photo_name" if "photo_name" in names else "label"  # see prediction_outputs
    try:
        widest = float(layer.maximumValue(layer.fields().indexOf("level")))
    except (TypeError, ValueError):  # no features (NULL): nothing to draw either way
        widest = 1.0
    stroke = f"""CASE WHEN "level" >= {widest - 1e-9!r} THEN 'dash' ELSE 'solid' END"""  # a double read back
    categories = []
    values = sorted(str(v) for v in layer.uniqueValues(layer.fields().indexOf(label)) if v is not None)
    for i, value in enumerate(values):  # the same order and palette as style_prediction_points
        symbol = QgsFillSymbol.createSimple({"color": "0,0,0,0", "outline_color": PALETTE[i % len(PALETTE)],
                                             "outline_width": "0.6"})
        symbol.symbolLayer(0).setDataDefinedProperty(
            QgsSymbolLayer.Property.PropertyStrokeStyle,
            QgsProperty.fromExpression(stroke))
        categories.append(QgsRendererCategory(value, symbol, value))
    layer.setRenderer(QgsCategorizedSymbolRenderer(label, categories))
    layer.setMapTipTemplate(f'[% "{label}" %]: [% format_number("level" * 100, 0) %]% credible region, '
                            '[% format_number("area_km2", 0) %] km², [% "n_parts" %] part(s)')
    layer.triggerRepaint()


def style_archive_points(layer: QgsVectorLayer) -> None:
    """The top-1 points of an archive: one symbol for all (a colour per photo means nothing for thousands),
    the photo in the map tip and an action that opens it."""
    layer.loadNamedStyle(resource(POINTS_STYLE))
    label_points(layer)
    layer.setDisplayExpression('"photo_name"')
    layer.setMapTipTemplate('<b>[% "photo_name" %]</b><br>probability [% format_number("prob", 4) %]'
                            '<br><img src="file://[% "photo" %]" width="240">')
    add_open_photo_action(layer, "photo")
    layer.triggerRepaint()


STYLERS = {"probability": style_probability_raster, "similarity": style_similarity_raster,
           "regions": style_credible_regions, "points": style_prediction_points, "truth": style_truth_lines,
           "archive": style_archive_points, **REFERENCE_STYLERS}


RUN_GROUP_PREFIX = "GeoCLIP "


RUN_ID_PROPERTY = "geoclip/run"


def run_group(project: QgsProject, name: str, run_id: str = ""):
    """The layer-tree group for one run, created at the top of the tree if missing.

    A new run's group is the one an analyst looks at: earlier GeoCLIP run groups are collapsed and
    switched off, so rasters of different runs never stack on each other.
    """
    root = project.layerTreeRoot()
    run_id = run_id or name
    group = run_group_of(project, run_id)
    if group is None:  # names may repeat ("Photos 12:05 (3)" twice in a minute); the run id does not
        group = root.insertGroup(0, name)
        group.setCustomProperty(RUN_ID_PROPERTY, run_id)
    for other in root.children():
        # every time, not only at creation: the desktop's layer panel re-expands a group that QGIS
        # inserts a result into (it inserts at the selected layer, often in the previous run's group)
        if other is not group and isinstance(other, QgsLayerTreeGroup) and other.name().startswith(RUN_GROUP_PREFIX):
            other.setExpanded(False)
            other.setItemVisibilityChecked(False)
    return group


def run_group_of(project: QgsProject, run_id) -> QgsLayerTreeGroup | None:
    """The top-level group of the run ``run_id`` (its folder), or None."""
    return next((g for g in project.layerTreeRoot().children() if isinstance(g, QgsLayerTreeGroup)
                 and g.customProperty(RUN_ID_PROPERTY) == str(run_id)), None)


def in_run_group(project: QgsProject, layer) -> bool:
    """Whether ``layer`` sits in one of GeoCLIP's groups (any run, any algorithm)."""
    node = project.layerTreeRoot().findLayer(layer.id())
    parent = node.parent() if node is not None else None
    while parent is not None:
        if isinstance(parent, QgsLayerTreeGroup) and parent.customProperty(RUN_ID_PROPERTY):
            return True
        parent = parent.parent()
    return False


def move_into_group(project: QgsProject, layer, group_name: str, run_id: str = "") -> None:
    """Move ``layer``'s tree node into the run's group, keeping the layer itself.

    Points go to the top of the group (above every raster); of the rasters only the first one is
    switched on, the others stay in the group, off, one click away.
    """
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    group = run_group(project, group_name, run_id)
    # Where QGIS put the node depends on the release and on what the layer panel has selected (the
    # desktop inserts at the selection), so the position is set here, not assumed.
    index = 0 if isinstance(layer, QgsVectorLayer) else len(group.children())
    if node is None or node.parent() is not group or group.children().index(node) != min(
            index, len(group.children()) - 1):
        new_node = group.insertLayer(index, layer)
        if node is not None:
            node.parent().removeChildNode(node)
        node = new_node
    if isinstance(layer, QgsRasterLayer):
        rasters_on = [n for n in group.findLayers() if isinstance(n.layer(), QgsRasterLayer)
                      and n.isVisible() and n is not node]
        node.setItemVisibilityChecked(not rasters_on)


def refresh_legend(layer) -> None:
    """Tell the layer tree that the symbology changed: a renderer edited in place is not announced,
    and the legend would keep showing the style file's 0..1 ramp."""
    layer.triggerRepaint()
    layer.emitStyleChanged()
    layer.legendChanged.emit()


class GroupAndStyle(QgsProcessingLayerPostProcessorInterface):
    """Post-processor: put a result layer into its run group and apply its shipped style."""

    # Lifetime: the run's context deletes its post-processors in its destructor, QGIS may call one until then,
    # and sip ties the Python object only to a temporary. Python therefore keeps every one, for the session:
    # about 300 bytes per result layer. Both ways tried to let them go (after QGIS's call with C++ owning them;
    # once sip reports the C++ side deleted) crashed QGIS 3.40 intermittently in the garbage collector.
    _alive: list[GroupAndStyle] = []

    def __init__(self, group_name: str, style: str, run_id: str = "") -> None:
        super().__init__()
        self.group_name = group_name
        self.style = style
        self.run_id = run_id
        GroupAndStyle._alive.append(self)

    @guarded
    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802 - QGIS API
        STYLERS[self.style](layer)
        project = context.project() or QgsProject.instance()
        move_into_group(project, layer, self.group_name, self.run_id)
        refresh_legend(layer)
        # this run's other layers may be in the project but not yet in its group
        pending = {source.split("|")[0] for source in context.layersToLoadOnCompletion()}
        ensure_basemap(project, lambda other: other.source().split("|")[0] in pending or in_run_group(project, other))


def load_on_completion(context: QgsProcessingContext, path: str, name: str, group: str, style: str,
                       output_name: str = "", raster: bool = False, run_id: str = "") -> None:
    """Ask Processing to add ``path`` to the project after the run, styled and grouped."""
    project = context.project() or QgsProject.instance()
    details = QgsProcessingContext.LayerDetails(name, project, output_name)
    details.forceName = True
    details.layerTypeHint = (QgsProcessingUtils.LayerHint.Raster if raster else QgsProcessingUtils.LayerHint.Vector)
    details.setPostProcessor(GroupAndStyle(group, style, run_id))
    context.addLayerToLoadOnCompletion(path, details)
