"""Every text a user reads in the dock goes through tr() and every input widget explains itself."""

from __future__ import annotations

import ast
from pathlib import Path

from qgis.gui import QgsExtentWidget, QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QWidget,
)

PLUGIN = Path(__file__).resolve().parents[1] / "geoclip_qgis"
DOCK_FILES = sorted((PLUGIN / "ui").glob("*.py")) + [PLUGIN / "plugin.py"]
TEXT_CALLS = {"setToolTip", "setText", "setPlaceholderText", "addRow", "addTab", "setTitle", "append",
              "appendPlainText", "QLabel", "QPushButton", "QCheckBox", "QGroupBox", "QAction"}
INPUTS = (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QPlainTextEdit, QProgressBar, QgsFileWidget,
          QgsMapLayerComboBox, QgsFieldComboBox, QgsExtentWidget)


def _untranslated(path: Path) -> list[str]:
    """String literals handed straight to a widget text call (not through tr())."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in TEXT_CALLS:
            continue
        for arg in node.args:
            literal = isinstance(arg, ast.JoinedStr) or (isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                                                         and arg.value.strip())
            if literal:
                found.append(f"{path.name}:{arg.lineno}")
    return found


def test_dock_texts_go_through_tr():
    assert len(DOCK_FILES) >= 8 and all(path.is_file() for path in DOCK_FILES)  # the dock's modules, all read
    assert [hit for path in DOCK_FILES for hit in _untranslated(path)] == []


def test_the_tr_hook_translates(qgis_app):  # noqa: ARG001
    from qgis.PyQt.QtCore import QCoreApplication, QTranslator

    from geoclip_qgis.i18n import CONTEXT, tr

    class Upper(QTranslator):
        def translate(self, context, text, disambiguation=None, n=-1):  # noqa: ARG002
            return text.upper() if context == CONTEXT else ""

    translator = Upper()
    QCoreApplication.installTranslator(translator)
    try:
        assert tr("Geolocate photos") == "GEOLOCATE PHOTOS"
    finally:
        QCoreApplication.removeTranslator(translator)
    assert tr("Geolocate photos") == "Geolocate photos"


def test_every_dock_input_has_a_tooltip(loaded_plugin):
    dock = loaded_plugin.dock
    missing = []
    owners = [dock.geolocate_tab, dock.text_tab, dock.embeddings_tab, dock.setup_tab, dock.setup_tab.installer,
              dock.geolocate_tab.results, dock.text_tab.results]
    owners += [tab.controls for tab in dock.task_tabs()]
    for owner in owners:
        for name, widget in vars(owner).items():
            if isinstance(widget, QWidget) and isinstance(widget, INPUTS) and not widget.toolTip().strip():
                missing.append(f"{type(owner).__name__}.{name}")
    assert missing == []
    labels = [w for w in vars(dock.setup_tab).values() if isinstance(w, QLabel)]
    assert labels  # the dependency status reads as text
