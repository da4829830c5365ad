"""The results browser's table: one row per photo or query of a run, sortable, with thumbnails.

Thumbnails are decoded only for the rows the view draws (a JPEG is decoded at the reduced size, not in full),
and kept: a run of 1,000 photos costs what the analyst scrolls through. Missing values (no EXIF, no regions)
sort last in either order, so "worst error first" lists the photos that have an error.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QAbstractTableModel, QModelIndex, QSize, QSortFilterProxyModel, Qt
from qgis.PyQt.QtGui import QImageReader, QPixmap

from ..i18n import tr
from ..run_index import PhotoRow, RunIndex

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
NAME, TOP1, PROB, AREA, ERROR = range(5)
THUMBNAIL = QSize(48, 36)


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


class Thumbnails:
    """Small pictures of photos, read once each at thumbnail size (Qt's JPEG reader decodes at a fraction)."""

    def __init__(self, size: QSize = THUMBNAIL) -> None:
        self.size = size
        self.cache: dict[str, QPixmap | None] = {}

    def get(self, path: str) -> QPixmap | None:
        if path not in self.cache:
            self.cache[path] = self._read(path)
        return self.cache[path]

    def _read(self, path: str) -> QPixmap | None:
        reader = QImageReader(path)
        reader.setAutoTransform(True)  # EXIF orientation, as the photo was taken
        full = reader.size()
        if full.isValid():
            reader.setScaledSize(full.scaled(self.size, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        return None if image.isNull() else QPixmap.fromImage(image)


class PhotoTableModel(QAbstractTableModel):
    """The rows of one :class:`RunIndex` (or none)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.index_: RunIndex | None = None
        self.thumbnails = Thumbnails()

    def set_run(self, index: RunIndex | None) -> None:
        self.beginResetModel()
        self.index_ = index
        self.thumbnails = Thumbnails()
        self.endResetModel()

    def row_at(self, row: int) -> PhotoRow:
        return self.index_.rows[row]

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() or self.index_ is None else len(self.index_.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else 5

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or role not in (Qt.ItemDataRole.DisplayRole,
                                                                   Qt.ItemDataRole.ToolTipRole):
            return None
        level = self.index_.level if self.index_ is not None and self.index_.level is not None else 0.9
        noun = tr("Photo") if self.index_ is None or self.index_.photos else tr("Query")
        if role == Qt.ItemDataRole.ToolTipRole:
            return (tr("The photo (or text query); double-click opens the photo"),
                    tr("GeoCLIP's best guess: latitude, longitude"), tr("The best guess's probability"),
                    tr("Area of the smallest region holding {level:.0%} of the probability").format(level=level),
                    tr("Distance from the best guess to the EXIF position (photos with GPS only)"))[section]
        return (noun, tr("Top-1"), tr("Prob."), tr("{level:.0%} km²").format(level=level), tr("Error km"))[section]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.index_ is None:
            return None
        row, column = self.index_.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (row.name, f"{row.lat:.4f}, {row.lon:.4f}", f"{row.prob:.4f}", _number(row.area_km2, 0),
                    _number(row.error_km, 1))[column]
        if role == SORT_ROLE:
            return (row.name.lower(), row.lat, row.prob, row.area_km2, row.error_km)[column]
        if role == Qt.ItemDataRole.DecorationRole and column == NAME and self.index_.photos:
            return self.thumbnails.get(row.source)
        if role == Qt.ItemDataRole.ToolTipRole and column == NAME:
            return row.source
        if role == Qt.ItemDataRole.TextAlignmentRole and column != NAME:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class PhotoSortModel(QSortFilterProxyModel):
    """Sorts by each column's value (numbers as numbers); rows without one last, ascending or descending."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802 - Qt API
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        descending = self.sortOrder() == Qt.SortOrder.DescendingOrder
        if a is None or b is None:
            return b is None and a is not None if not descending else a is None and b is not None
        return a < b
