"""Dock tab "Text query": a form over ``geoclip:geolocatetext`` (no logic of its own)."""

from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QPlainTextEdit, QWidget

from .. import settings
from ..i18n import tr
from ..processing import definitions as d
from .form_tab import FormTab
from .results import ResultsOptions

ALGORITHM = "geoclip:geolocatetext"


class TextTab(FormTab):
    """Type places or scene descriptions, press Run; a probability raster and top-k points per query.

    Empty input is refused by the algorithm's checkParameterValues before any task starts."""

    ALGORITHM = ALGORITHM

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(iface, parent)
        form = self.add_box(tr("Queries"))
        self.queries = QPlainTextEdit()
        self.queries.setPlaceholderText(tr("Pyramids of Giza\nEiffel Tower at night\na snowy mountain village"))
        self.queries.setPlainText(settings.TEXT_QUERIES.read())
        self.queries.setToolTip(tr("One query per line: a place, a landmark or a scene. CLIP reads up to 77 tokens "
                                "(about 50 words) of each. Needs the CLIP ViT-L/14 text tower (Setup tab)."))
        self.queries.setMaximumHeight(110)
        self.query_file = QgsFileWidget()
        self.query_file.setFilter("Text files (*.txt)")
        self.query_file.setToolTip(tr("Optional: a UTF-8 text file with one query per line (added to the list above)"))
        form.addRow(tr("Queries"), self.queries)
        form.addRow(tr("Query file"), self.query_file)

        self.results = ResultsOptions(iface, settings.results_settings("text"), tr("query"))
        self.column.addWidget(self.results)
        self.add_controls(tr("Geolocate text"), tr("Geolocate the queries in the background; QGIS stays usable"))

    def parameters(self) -> dict:
        """The toolbox parameters this form stands for."""
        return {
            d.QUERIES: self.queries.toPlainText(),
            d.QUERY_FILE: self.query_file.filePath() or None,
            **self.results.parameters(),
        }

    def remember(self) -> None:
        settings.TEXT_QUERIES.write(self.queries.toPlainText())
        self.results.remember()
