"""The post-processors that style and group a run's layers: alive as long as their run's context (which
deletes them), released once it is gone, never kept forever and never collected early."""

from __future__ import annotations

import gc
import weakref

from qgis.core import QgsProcessingContext, QgsProject


def _recording(layers, made: list):
    class Recorded(layers.GroupAndStyle):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))

    return Recorded


def test_released_once_its_run_is_over(geoclip_provider, tmp_path, monkeypatch):  # noqa: ARG001
    import processing

    from geoclip_qgis import layers

    made: list = []
    monkeypatch.setattr(layers, "GroupAndStyle", _recording(layers, made))
    out = processing.runAndLoadResults("geoclip:placeslikehere", {
        "POINT": "2.35,48.85 [EPSG:4326]", "CELL_SIZE": 5.0, "SAMPLES": 1, "OUTPUT": str(tmp_path / "p.tif")})
    loaded = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == out["OUTPUT"]]
    assert len(loaded) == 1 and loaded[0].renderer().type() == "singlebandpseudocolor"  # it ran: styled
    layers.load_on_completion(QgsProcessingContext(), str(tmp_path / "next.gpkg"), "n", "GeoCLIP test", "points")
    gc.collect()  # the run's context is gone, so making the next one let the first go
    assert len(made) == 2 and made[0]() is None
    QgsProject.instance().removeMapLayer(loaded[0].id())


def test_waiting_while_its_context_lives_pruned_after(qgis_app, tmp_path, monkeypatch):  # noqa: ARG001
    from geoclip_qgis import layers

    made: list = []
    monkeypatch.setattr(layers, "GroupAndStyle", _recording(layers, made))
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    layers.load_on_completion(context, str(tmp_path / "a.gpkg"), "a", "GeoCLIP test", "points")
    gc.collect()
    assert made[0]() is not None  # no Python owner but the waiting set: QGIS may still call it
    details = context.layersToLoadOnCompletion()
    assert type(next(iter(details.values())).postProcessor()).__name__ == "Recorded"
    del details, context  # a run whose layers never loaded: its context deletes the post-processor
    gc.collect()
    layers.load_on_completion(QgsProcessingContext(), str(tmp_path / "b.gpkg"), "b", "GeoCLIP test", "points")
    gc.collect()
    assert made[0]() is None  # pruned with the next one
