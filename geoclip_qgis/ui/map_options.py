"""The Setup tab's "Map" box: what goes under a new project's first results, and the web map a photo's
position opens in (the results browser's row menu)."""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLineEdit, QWidget

from .. import settings
from ..basemap import NONE, OSM, WORLD
from ..guard import guarded
from ..i18n import tr


class MapOptions(QGroupBox):
    """Basemap choice and web map address, saved as soon as they change."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(tr("Map"), parent)
        form = QFormLayout(self)
        self.basemap = QComboBox()
        for label, value in ((tr("QGIS's world map (offline)"), WORLD), (tr("OpenStreetMap tiles (online)"), OSM),
                             (tr("None"), NONE)):
            self.basemap.addItem(label, value)
        self.basemap.setCurrentIndex(max(0, self.basemap.findData(settings.BASEMAP.read())))
        self.basemap.setToolTip(tr("Added once under the first results of a project that holds no other layer, at "
                                   "the bottom of the layer tree. The world map ships with QGIS (no network); "
                                   "OpenStreetMap's tiles need internet access."))
        self.web_map = QLineEdit(settings.WEB_MAP_URL.read())
        self.web_map.setPlaceholderText(settings.WEB_MAP_URL.default)
        self.web_map_tip = tr("The web page a photo's position opens in (results browser, right-click): {lat} and "
                              "{lon} are replaced by its top-1 position. Empty: OpenStreetMap.")
        self.web_map.setToolTip(self.web_map_tip)
        form.addRow(tr("Basemap"), self.basemap)
        form.addRow(tr("Web map"), self.web_map)
        self.basemap.currentIndexChanged.connect(self.save)
        self.web_map.editingFinished.connect(self.save)

    def show_error(self, text: str) -> None:
        """Where ``@guarded`` shows an unexpected error: the web map field's tooltip is no place; the title is."""
        self.setTitle(tr("Map: {error}").format(error=text))

    @guarded
    def save(self) -> None:
        settings.BASEMAP.write(self.basemap.currentData())
        template = self.web_map.text().strip()
        if template and ("{lat}" not in template or "{lon}" not in template):
            self.web_map.setStyleSheet("color: #b91c1c")
            self.web_map.setToolTip(tr("The address needs {lat} and {lon}, e.g. {example}").format(
                example=settings.WEB_MAP_URL.default))
            return
        self.web_map.setStyleSheet("")
        self.web_map.setToolTip(self.web_map_tip)
        if template:
            settings.WEB_MAP_URL.write(template)
        else:
            settings.WEB_MAP_URL.forget()
