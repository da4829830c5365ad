"""The post-processors that style and group a run's layers must be alive whenever QGIS may call them: a
Python object collected while its run's context still points at it crashes QGIS. They are kept for the
session (see GroupAndStyle: releasing them crashed QGIS 3.40 intermittently)."""

from __future__ import annotations

import gc
import weakref

from qgis.core import QgsProcessingContext, QgsProject


def test_a_post_processor_outlives_its_python_references_and_does_its_work(geoclip_provider, tmp_path):  # noqa: ARG001
    import processing

    from geoclip_qgis import layers

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    layers.load_on_completion(context, str(tmp_path / "a.gpkg"), "a", "GeoCLIP test", "points")
    made = weakref.ref(layers.GroupAndStyle._alive[-1])
    gc.collect()
    assert made() is not None  # nothing in Python names it, yet QGIS may still call it
    details = context.layersToLoadOnCompletion()
    assert next(iter(details.values())).postProcessor() is made()
    out = processing.runAndLoadResults("geoclip:placeslikehere", {
        "POINT": "2.35,48.85 [EPSG:4326]", "CELL_SIZE": 5.0, "SAMPLES": 1, "OUTPUT": str(tmp_path / "p.tif")})
    gc.collect()
    loaded = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == out["OUTPUT"]]
    assert len(loaded) == 1 and loaded[0].renderer().type() == "singlebandpseudocolor"  # styled by it
    QgsProject.instance().removeMapLayer(loaded[0].id())
