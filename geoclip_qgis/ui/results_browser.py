"""Dock tab "Results": review a run photo by photo.

Lists the photos (or queries) of a run in the project with their best guess, probability, 90% region and error;
selecting one shows it on the map (``photo_view``), the arrow keys step through them, a double-click opens the
photo, and a row's menu copies its coordinates or opens them in the Setup tab's web map. The list is read from
the run's GeoPackage (``run_index``), so a saved project reopened later lists its runs again, and any run folder
on disk (one ``qgis_process`` wrote) can be opened.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsLayerTreeGroup, QgsProject
from qgis.PyQt.QtCore import QModelIndex, Qt, QTimer, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QGuiApplication
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from .. import settings
from ..compat import QAction
from ..guard import error_line, guarded
from ..i18n import tr
from ..layers import RUN_ID_PROPERTY
from ..photo_view import show_all, show_photo
from ..run_index import PhotoRow, RunFolderError, RunIndex, is_run_folder, read_run
from ..run_layers import RunLayerError, open_run
from .photo_table import NAME, THUMBNAIL, PhotoSortModel, PhotoTableModel


def web_map_url(template: str, lat: float, lon: float) -> str:
    """The Setup tab's web map address for a position: ``{lat}`` and ``{lon}`` filled in (other braces kept)."""
    return template.replace("{lat}", f"{lat:.6f}").replace("{lon}", f"{lon:.6f}")


def coordinates(row: PhotoRow) -> str:
    """The top-1 position as a GIS or a web map search takes it: 'lat, lon' in decimal degrees."""
    return f"{row.lat:.6f}, {row.lon:.6f}"


def project_runs(project: QgsProject) -> list[tuple[str, str]]:
    """(group name, run folder) of each geolocation run in the project, top of the tree (newest) first."""
    runs = []
    for node in project.layerTreeRoot().children():
        folder = node.customProperty(RUN_ID_PROPERTY) if isinstance(node, QgsLayerTreeGroup) else None
        if folder and is_run_folder(folder):
            runs.append((node.name(), str(folder)))
    return runs


class ResultsBrowser(QWidget):
    """The run picker, the photo table and its status line."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.index: RunIndex | None = None
        self.known: set[str] = set()  # run folders listed before: a new one is shown as it appears
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.runs = QComboBox()
        self.runs.setToolTip(tr("The geolocation runs in this project, newest first"))
        self.runs.currentIndexChanged.connect(self._run_picked)
        self.open_button = QPushButton(tr("Open run folder…"))
        self.open_button.setToolTip(tr("A run folder on disk (geoclip_YYYYMMDD_HHMMSS, e.g. written by "
                                       "qgis_process): its layers are added and its photos listed"))
        self.open_button.clicked.connect(self.pick_folder)
        top.addWidget(self.runs, 1)
        top.addWidget(self.open_button)
        layout.addLayout(top)
        self.model = PhotoTableModel(self)
        self.proxy = PhotoSortModel(self)
        self.proxy.setSourceModel(self.model)
        self.table = self._table()
        layout.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        self.status = QLabel(tr("No run in this project yet: geolocate photos, or open a run folder."))
        self.status.setWordWrap(True)
        self.all_button = QPushButton(tr("Show all"))
        self.all_button.setToolTip(tr("Every photo's regions and lines again, no selection"))
        self.all_button.clicked.connect(self.show_everything)
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.all_button)
        layout.addLayout(bottom)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.timeout.connect(self.refresh_runs)
        self.project = QgsProject.instance()
        self._signals = [self.project.layersAdded, self.project.layersRemoved, self.project.readProject,
                         self.project.cleared]
        for signal in self._signals:
            signal.connect(self.schedule_refresh)
        self.refresh_runs()

    def _table(self) -> QTableView:
        table = QTableView()
        table.setModel(self.proxy)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setIconSize(THUMBNAIL)
        table.verticalHeader().setDefaultSectionSize(THUMBNAIL.height() + 4)
        table.verticalHeader().hide()
        column = settings.BROWSER_SORT_COLUMN.read()
        order = Qt.SortOrder.DescendingOrder if settings.BROWSER_SORT_DESCENDING.read() else Qt.SortOrder.AscendingOrder
        table.horizontalHeader().setSortIndicator(column, order)  # -1: the run's own order
        table.setSortingEnabled(True)  # sorts by the indicator set just above
        table.horizontalHeader().sortIndicatorChanged.connect(self._sorted)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # the numbers' widths (drawn rows)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)  # the name takes the rest
        header.setResizeContentsPrecision(0)  # sized on the rows in view, not on all 1,000
        table.setMinimumHeight(180)
        table.selectionModel().currentRowChanged.connect(self._current_changed)
        table.doubleClicked.connect(self._double_clicked)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._context_menu)
        table.setToolTip(tr("Select a photo to show it on the map; ↑/↓ step through them; double-click opens "
                            "the photo; right-click for its coordinates"))
        return table

    def show_error(self, text: str) -> None:
        """Where ``@guarded`` shows an unexpected error of this tab's slots."""
        self.status.setText(error_line(text))

    # ------------------------------------------------------------------ runs
    @guarded
    def schedule_refresh(self, *_args) -> None:
        """The project changed: list its runs again once the change is complete (one refresh for many layers)."""
        self.refresh_timer.start(0)

    @guarded
    def refresh_runs(self) -> None:
        """List the project's runs; a run that was not there before (one that just ended) is shown."""
        runs = project_runs(self.project)
        current = str(self.index.folder) if self.index is not None else None
        new = [folder for _, folder in runs if folder not in self.known]
        self.known = {folder for _, folder in runs}
        wanted = new[0] if new else current if current in self.known else (runs[0][1] if runs else None)
        self.runs.blockSignals(True)
        self.runs.clear()
        for name, folder in runs:
            self.runs.addItem(name, folder)
        self.runs.setCurrentIndex(self.runs.findData(wanted) if wanted else -1)
        self.runs.blockSignals(False)
        if wanted != current or wanted is None:
            self.load(wanted)

    @guarded
    def _run_picked(self, position: int) -> None:
        self.load(self.runs.itemData(position) if position >= 0 else None)

    def load(self, folder: str | None) -> None:
        """List the photos of the run in ``folder`` (None: nothing)."""
        self.index = None
        if folder is not None:
            try:
                self.index = read_run(folder)
            except RunFolderError as exc:
                self.status.setText(str(exc))
        self.model.set_run(self.index)
        if self.index is not None:
            self.status.setText(self._summary())
        elif folder is None:
            self.status.setText(tr("No run in this project yet: geolocate photos, or open a run folder."))

    def _summary(self) -> str:
        rows = self.index.rows
        with_error = sum(row.error_km is not None for row in rows)
        noun = tr("photos") if self.index.photos else tr("queries")
        text = tr("{n} {noun}").format(n=len(rows), noun=noun)
        if with_error:
            text += tr(", {k} with EXIF GPS (sort by error to audit the worst first)").format(k=with_error)
        return text

    @guarded
    def pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, tr("Open a GeoCLIP run folder"))
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str) -> bool:
        """Add the run in ``folder`` to the project (its handful of layers) and list it; False with the reason."""
        try:
            open_run(self.project, folder)
        except (RunFolderError, RunLayerError) as exc:
            self.status.setText(str(exc))
            return False
        self.refresh_runs()
        self.runs.setCurrentIndex(self.runs.findData(str(Path(folder))))
        return True

    # ------------------------------------------------------------------ rows
    def current_row(self) -> PhotoRow | None:
        index = self.table.currentIndex()
        return self.model.row_at(self.proxy.mapToSource(index).row()) if index.isValid() and self.index else None

    @guarded
    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or self.index is None:
            return
        row = self.model.row_at(self.proxy.mapToSource(current).row())
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        show_photo(self.project, canvas, self.index, row)

    @guarded
    def show_everything(self) -> None:
        if self.index is not None:
            show_all(self.project, self.index)
            self.table.clearSelection()

    @guarded
    def _sorted(self, column: int, order) -> None:
        settings.BROWSER_SORT_COLUMN.write(column)
        settings.BROWSER_SORT_DESCENDING.write(order == Qt.SortOrder.DescendingOrder)

    @guarded
    def _double_clicked(self, index: QModelIndex) -> None:
        if index.isValid() and self.index is not None and self.index.photos:
            open_photo(self.model.row_at(self.proxy.mapToSource(index).row()))

    def row_actions(self, row: PhotoRow) -> list[QAction]:
        """The actions of ``row``'s context menu."""
        copy = QAction(tr("Copy coordinates ({lat:.5f}, {lon:.5f})").format(lat=row.lat, lon=row.lon), self)
        copy.triggered.connect(guarded(lambda: QGuiApplication.clipboard().setText(coordinates(row))))
        web = QAction(tr("Open the location in the web map"), self)
        web.setToolTip(tr("The Setup tab's web map address, with the top-1 position"))
        web.triggered.connect(guarded(lambda: QDesktopServices.openUrl(QUrl(
            web_map_url(settings.WEB_MAP_URL.read(), row.lat, row.lon)))))
        actions = [copy, web]
        if self.index is not None and self.index.photos:
            photo = QAction(tr("Open the photo"), self)
            photo.triggered.connect(guarded(lambda: open_photo(row)))
            actions.append(photo)
        return actions

    @guarded
    def _context_menu(self, position) -> None:
        row = self.current_row()
        index = self.table.indexAt(position)
        if index.isValid():
            row = self.model.row_at(self.proxy.mapToSource(index).row())
        if row is None:
            return
        menu = QMenu(self)
        for action in self.row_actions(row):
            menu.addAction(action)
        menu.exec(self.table.viewport().mapToGlobal(position))

    def shutdown(self) -> None:
        """Before the plugin unloads: stop listening to the project (it outlives this widget)."""
        self.refresh_timer.stop()
        for signal in self._signals:
            try:
                signal.disconnect(self.schedule_refresh)
            except (TypeError, RuntimeError):  # already disconnected
                pass


def open_photo(row: PhotoRow) -> None:
    """The photo in the system's viewer."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(row.source))
