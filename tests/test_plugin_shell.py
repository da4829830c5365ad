"""The plugin shell in a real headless QGIS: load, show, unload, reload, and no torch at load."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QEvent

import geoclip_qgis
from geoclip_qgis.compat import QAction


def _plugin_actions(iface):
    return [a for a in iface.mainWindow().findChildren(QAction) if a.objectName() == "GeoClipShowPanel"]


def test_load_show_unload_twice(qgis_iface):
    registry = QgsApplication.processingRegistry()
    for _ in range(2):
        plugin = geoclip_qgis.classFactory(qgis_iface)
        plugin.initGui()
        assert registry.providerById("geoclip") is not None
        assert plugin.action is not None and plugin.action.text() == "GeoCLIP panel"
        assert not plugin.action.icon().isNull()
        assert plugin.dock.windowTitle() == "GeoCLIP"
        plugin.action.setChecked(True)
        assert plugin.dock.isVisible()
        assert plugin.dock.tabs.count() >= 1
        plugin.action.setChecked(False)
        assert not plugin.dock.isVisible()
        plugin.unload()
        QgsApplication.processEvents()
        assert registry.providerById("geoclip") is None
        assert plugin.dock is None and plugin.action is None
    QgsApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # run deleteLater
    assert _plugin_actions(qgis_iface) == []


def test_setup_tab_lists_dependencies(qgis_iface, artifacts_dir):
    plugin = geoclip_qgis.classFactory(qgis_iface)
    plugin.initGui()
    try:
        plugin.dock.resize(420, 640)
        plugin.dock.show()
        text = plugin.dock.setup_tab.status.text()
        for name in ("torch", "transformers", "geoclip"):
            assert name in text
        assert "All dependencies found" in text  # the test venv has them all
        assert plugin.dock.grab().save(str(artifacts_dir / "dock_setup.png"))
    finally:
        plugin.unload()


def test_every_tab_fits_a_dock_a_third_of_a_laptop_screen_wide(qgis_iface):
    """QGIS gives a right-hand dock about 40% of a 1366-pixel screen (546 px): no tab may need a horizontal
    scrollbar there (long check box labels once pushed "Geolocate photos" to 685 px; details go in tooltips)."""
    from qgis.PyQt.QtWidgets import QScrollArea

    plugin = geoclip_qgis.classFactory(qgis_iface)
    plugin.initGui()
    try:
        tabs = plugin.dock.tabs
        plugin.dock.resize(546, 700)
        plugin.dock.show()
        widths = {}
        for i in range(tabs.count()):
            page = tabs.widget(i)
            inner = page.widget() if isinstance(page, QScrollArea) else page
            widths[tabs.tabText(i)] = inner.minimumSizeHint().width()
        assert len(widths) == 5 and all(width > 0 for width in widths.values()), widths
        assert max(widths.values()) <= 520, widths  # 546 less the scroll area's vertical bar and the margins
    finally:
        plugin.unload()


def test_settings_are_remembered(qgis_iface, tmp_path, monkeypatch):
    monkeypatch.delenv("GEOCLIP_CLIP_MODEL", raising=False)
    plugin = geoclip_qgis.classFactory(qgis_iface)
    plugin.initGui()
    try:
        tab = plugin.dock.setup_tab
        tab.clip_model.setText(str(tmp_path))
        tab.clip_model.editingFinished.emit()  # what leaving the field does: saved at once, no button
        import os

        from geoclip_qgis import settings

        assert settings.resolve(settings.CLIP_MODEL) == str(tmp_path)  # what every run uses, dock or not
        assert "GEOCLIP_CLIP_MODEL" not in os.environ  # nothing leaks into QGIS's shared environment
    finally:
        plugin.unload()
    plugin = geoclip_qgis.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert plugin.dock.setup_tab.clip_model.text() == str(tmp_path)
        plugin.dock.setup_tab.clip_model.setText("")
        plugin.dock.setup_tab.save()
    finally:
        plugin.unload()


def test_loading_does_not_import_torch():
    """A fresh interpreter: load the plugin in QGIS and check torch/transformers stayed out."""
    code = textwrap.dedent(
        """
        import sys
        from qgis.core import QgsApplication
        app = QgsApplication([], False); app.initQgis()
        from qgis.PyQt.QtWidgets import QMainWindow
        class Iface:  # just what initGui/unload call
            def __init__(self): self.win = QMainWindow()
            def mainWindow(self): return self.win
            def __getattr__(self, name): return lambda *a, **k: None
        iface = Iface()
        import geoclip_qgis
        plugin = geoclip_qgis.classFactory(iface); plugin.initGui()
        heavy = sorted(m for m in ("torch", "transformers", "safetensors", "sklearn") if m in sys.modules)
        plugin.unload()
        print("HEAVY=" + ",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY=" in out.stdout, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "HEAVY=", out.stdout


def test_a_stale_setup_tab_never_writes_back_over_a_newer_choice(qgis_app, tmp_path):  # noqa: ARG001
    """Two Setup tabs alive at once (a dock not yet gone, a test's fixture): the older one's backbone field losing
    its focus must not save its stale empty text over what the newer one saved."""
    from geoclip_qgis import settings
    from geoclip_qgis.ui.setup_tab import SetupTab

    settings.CLIP_MODEL.forget()
    older, newer = SetupTab(), SetupTab()
    try:
        newer.clip_model.setText(str(tmp_path))
        newer.clip_model.editingFinished.emit()
        older.clip_model.editingFinished.emit()  # unchanged there: nothing to write
        older.save()
        assert settings.CLIP_MODEL.read() == str(tmp_path)
        older.clip_model.setText("openai/clip-vit-base-patch32")  # a change made there is saved, as ever
        older.clip_model.editingFinished.emit()
        assert settings.CLIP_MODEL.read() == "openai/clip-vit-base-patch32"
    finally:
        older.shutdown()
        newer.shutdown()
        settings.CLIP_MODEL.forget()
