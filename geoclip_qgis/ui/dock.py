"""The GeoCLIP dock: a thin front-end over the Processing algorithms, plus setup and status."""

from __future__ import annotations

import html

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QDockWidget, QFrame, QLabel, QScrollArea, QStyle, QTabWidget, QWidget

from .. import settings
from ..guard import guarded
from ..i18n import tr

TOOLBOX_DOCK = "ProcessingToolbox"  # the object name of QGIS's Processing Toolbox panel


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a scroll area: a tab never forces the dock (and QGIS's window) taller than the screen."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    return area


class RefusedDock(QgsDockWidget):
    """The dock when GeoCLIP's own ``model_utils`` cannot be used (``plugin.refused``): only the reason, so
    the toolbar button still answers and no tab imports the foreign package."""

    def __init__(self, message: str, parent: QWidget | None = None) -> None:
        super().__init__("GeoCLIP", parent)
        self.message = QLabel(tr("<b>GeoCLIP cannot run.</b><br>{reason}").format(reason=html.escape(message)))
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setWidget(scrolling(self.message))

    def task_tabs(self) -> list[QWidget]:
        """No tab runs anything."""
        return []

    def shutdown(self) -> None:
        """Nothing is running."""


class GeoClipDock(QgsDockWidget):
    """Dock widget hosting the plugin's tabs, each in a scroll area so the dock fits a laptop screen."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__("GeoCLIP", parent)
        self.iface = iface
        self.tabs = QTabWidget()
        from .embeddings_tab import EmbeddingsTab
        from .geolocate_tab import GeolocateTab
        from .results_browser import ResultsBrowser
        from .setup_tab import SetupTab
        from .text_tab import TextTab

        self.geolocate_tab = GeolocateTab(iface)
        self.text_tab = TextTab(iface)
        self.results_tab = ResultsBrowser(iface)
        self.embeddings_tab = EmbeddingsTab(iface)
        self.setup_tab = SetupTab()
        for tab, title in ((self.geolocate_tab, tr("Geolocate photos")), (self.text_tab, tr("Text query")),
                           (self.results_tab, tr("Results")), (self.embeddings_tab, tr("GPS embeddings")),
                           (self.setup_tab, tr("Setup"))):
            self.tabs.addTab(scrolling(tab), title)
        for tab in self.task_tabs():
            tab.controls.model_parameters = self.setup_tab.model_parameters
            tab.controls.iface = iface
        for tab in (self.geolocate_tab, self.text_tab):
            tab.controls.finished.connect(lambda ok, _results, c=tab.controls: self.point_to_results(ok, c))
        self.setWidget(self.tabs)
        self.visibilityChanged.connect(self.fit_width_once)

    WIDTH_SHARE = 0.4  # at most this share of QGIS's window on the first show: the map stays the larger part

    def form_width(self) -> int:
        """The width the widest tab's form asks for (a scroll area reports less than its content), with the
        vertical scroll bar and the frames."""
        inner = max(self.tabs.widget(i).widget().sizeHint().width() for i in range(self.tabs.count()))
        return inner + self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent) + 24

    def show_error(self, text: str) -> None:
        """Where ``@guarded`` shows an unexpected error of the dock's own slots: the Setup tab's log."""
        self.setup_tab.show_error(text)

    @guarded
    def fit_width_once(self, visible: bool) -> None:
        """The first time the dock shows in a profile, widen it to its forms (QGIS gives a new right-hand dock
        about 290 px at 1366x768 and the forms were cut off); later the width the user left is QGIS's to keep."""
        main = self.iface.mainWindow()
        if not visible or settings.DOCK_FITTED.read() or main is None or self.parentWidget() is not main:
            return
        settings.DOCK_FITTED.write(True)
        self.join_toolbox(main)
        width = min(self.form_width(), int(main.width() * self.WIDTH_SHARE))
        if self.width() < width:
            main.resizeDocks([self], [width], Qt.Orientation.Horizontal)

    def join_toolbox(self, main) -> None:
        """Share the Processing Toolbox's tab group, in front: as a third panel down the right side of a 1366x768
        window (under the toolbox and the Results Viewer) the results browser showed one row."""
        toolbox = main.findChild(QDockWidget, TOOLBOX_DOCK)
        if toolbox is None or not toolbox.isVisible() or toolbox.isFloating() or self.isFloating():
            return
        if main.dockWidgetArea(toolbox) == main.dockWidgetArea(self):
            main.tabifyDockWidget(toolbox, self)
            self.raise_()

    @guarded
    def point_to_results(self, ok: bool, controls) -> None:
        """After a geolocation run, where to review it photo by photo."""
        if ok:
            controls.append(tr("The Results tab lists every photo or query of the run: select one to see it alone "
                               "on the map."))

    def index_of(self, tab: QWidget) -> int:
        """The tab index of ``tab`` (each tab sits inside a scroll area); -1 if it is not one."""
        return next((i for i in range(self.tabs.count()) if self.tabs.widget(i).widget() is tab), -1)

    def task_tabs(self) -> list[QWidget]:
        """The tabs that run Processing tasks (each has ``controls``)."""
        return [self.geolocate_tab, self.text_tab, self.embeddings_tab]

    def shutdown(self) -> None:
        """Before the plugin unloads: stop every running task and detach it from the widgets about to go."""
        for tab in self.task_tabs():
            tab.controls.shutdown()
        self.results_tab.shutdown()
        self.setup_tab.shutdown()
