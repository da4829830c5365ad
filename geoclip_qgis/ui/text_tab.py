"""Dock tab "Text query": a form over ``geoclip:geolocatetext`` (no logic of its own)."""

from __future__ import annotations

from qgis.core import QgsSettings
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QFormLayout, QGroupBox, QPlainTextEdit, QVBoxLayout, QWidget

from ..guard import guarded
from ..i18n import tr
from .results import ResultsOptions
from .task_runner import RunControls

KEY = "geoclip/text/"
ALGORITHM = "geoclip:geolocatetext"


class TextTab(QWidget):
    """Type places or scene descriptions, press Run; a probability raster and top-k points per query."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        s = QgsSettings()
        layout = QVBoxLayout(self)

        box = QGroupBox(tr("Queries"))
        form = QFormLayout(box)
        self.queries = QPlainTextEdit()
        self.queries.setPlaceholderText(tr("Pyramids of Giza\nEiffel Tower at night\na snowy mountain village"))
        self.queries.setPlainText(s.value(KEY + "queries", "", type=str))
        self.queries.setToolTip(tr("One query per line: a place, a landmark or a scene. CLIP reads up to 77 tokens "
                                "(about 50 words) of each. Needs the CLIP ViT-L/14 text tower (Setup tab)."))
        self.queries.setMaximumHeight(110)
        self.query_file = QgsFileWidget()
        self.query_file.setFilter("Text files (*.txt)")
        self.query_file.setToolTip(tr("Optional: a UTF-8 text file with one query per line (added to the list above)"))
        form.addRow(tr("Queries"), self.queries)
        form.addRow(tr("Query file"), self.query_file)
        layout.addWidget(box)

        self.results = ResultsOptions(iface, KEY, tr("query"))
        layout.addWidget(self.results)

        self.controls = RunControls(ALGORITHM, tr("Geolocate text"))
        self.controls.run_button.setToolTip(tr("Geolocate the queries in the background; QGIS stays usable"))
        self.controls.run_button.clicked.connect(self.run)
        layout.addWidget(self.controls, 1)

    def parameters(self) -> dict:
        """The toolbox parameters this form stands for."""
        return {
            "QUERIES": self.queries.toPlainText(),
            "QUERY_FILE": self.query_file.filePath() or None,
            **self.results.parameters(),
        }

    def remember(self) -> None:
        QgsSettings().setValue(KEY + "queries", self.queries.toPlainText())
        self.results.remember()

    @guarded
    def run(self) -> None:
        """Empty input is refused by the algorithm's checkParameterValues before any task starts."""
        self.remember()
        self.controls.start(self.parameters())

    def cancel_running(self) -> None:
        self.controls.cancel()
