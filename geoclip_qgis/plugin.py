"""Menu, toolbar, dock and Processing provider: everything the plugin adds, and removes on unload."""

from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon

from .compat import QAction
from .guard import guarded
from .i18n import tr
from .paths import ensure_model_utils_importable, resource

MENU = "&GeoCLIP"


class GeoClipPlugin:
    """The object QGIS holds while the plugin is enabled."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.action: QAction | None = None
        self.dock = None
        self.provider = None
        # A foreign (or missing) model_utils: the plugin still loads, but the provider offers no algorithm and
        # the dock shows only this message. Nothing here imports model_utils, so no foreign code runs.
        self.refused = ""
        try:
            ensure_model_utils_importable()
        except ImportError as exc:
            from qgis.core import Qgis, QgsMessageLog

            self.refused = str(exc)
            QgsMessageLog.logMessage(self.refused, "GeoCLIP", Qgis.MessageLevel.Critical)
        from .setup.installer import add_deps_to_path

        add_deps_to_path()  # packages the Setup tab installed earlier

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        """Register the Processing provider (QGIS calls this also for qgis_process)."""
        from .processing.provider import GeoClipProvider

        self.provider = GeoClipProvider(self.refused)
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        """Add the toolbar button and menu entry that show or hide the GeoCLIP dock."""
        self.initProcessing()
        from .ui.dock import GeoClipDock, RefusedDock

        self.dock = RefusedDock(self.refused) if self.refused else GeoClipDock(self.iface)
        self.dock.setObjectName("GeoClipDock")
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()

        self.action = QAction(QIcon(resource("icon.svg")), tr("GeoCLIP panel"), self.iface.mainWindow())
        self.action.setObjectName("GeoClipShowPanel")
        self.action.setCheckable(True)
        self.action.setToolTip(tr("Show the GeoCLIP panel: geolocate photos, export GPS embeddings"))
        self.action.toggled.connect(self.show_dock)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToMenu(MENU, self.action)

    @guarded
    def show_dock(self, visible: bool) -> None:
        """Show the dock in front of the panels it shares a tab group with, or hide it."""
        self.dock.setVisible(visible)
        if visible:
            self.dock.raise_()

    def unload(self) -> None:
        """Remove every menu entry, button, dock and provider that initGui added."""
        if self.action is not None:
            self.iface.removePluginMenu(MENU, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action.deleteLater()
            self.action = None
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if not self.refused:  # a foreign package's module of that name is not ours to call
            release_model()
        from .leftovers import mark_model_utils_stale, say_if_uninstalled_later

        mark_model_utils_stale()  # the next load (an upgrade, a reload) imports model_utils afresh
        say_if_uninstalled_later(self.iface)


def release_model() -> None:
    """Free the loaded model, if any run loaded one (never imports torch just to unload).

    Left to interpreter shutdown, torch's objects outlived the libraries they need and QGIS 3.40
    (Python 3.13) crashed on exit after any run."""
    import sys

    geoclip_module = sys.modules.get("model_utils.model.geoclip")
    if geoclip_module is not None:
        geoclip_module.release_shared_model()
