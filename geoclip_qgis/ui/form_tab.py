"""What every algorithm tab of the dock shares: a column of boxed forms over one Processing algorithm,
Run / Cancel controls at the bottom, and a layer picker with "Selected features only".

The tabs hold no logic of their own: each builds the parameters the toolbox would and hands them to
:class:`RunControls`. Writing that frame once keeps the tabs to their own widgets.
"""

from __future__ import annotations

from qgis.core import QgsProcessingFeatureSourceDefinition
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QCheckBox, QFormLayout, QGroupBox, QVBoxLayout, QWidget

from ..guard import guarded
from ..i18n import tr
from ..settings import Setting
from .task_runner import RunControls


class FormTab(QWidget):
    """Base of the algorithm tabs: subclasses set ``ALGORITHM``, build their boxes with :meth:`add_box`, finish
    with :meth:`add_controls`, and implement ``parameters``/``remember`` (their remembered inputs are entries of
    ``geoclip_qgis.settings``)."""

    ALGORITHM = ""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.column = QVBoxLayout(self)

    def add_box(self, title: str) -> QFormLayout:
        """A titled box appended to the column; returns its form layout."""
        box = QGroupBox(title)
        self.column.addWidget(box)
        return QFormLayout(box)

    def add_controls(self, run_label: str, run_tip: str | None = None) -> RunControls:
        """Run / Cancel, progress and log at the bottom, taking the remaining height."""
        self.controls = RunControls(self.ALGORITHM, run_label)
        if run_tip:
            self.controls.run_button.setToolTip(run_tip)
        self.controls.run_button.clicked.connect(self.run)
        self.column.addWidget(self.controls, 1)
        return self.controls

    def add_layer_picker(self, form: QFormLayout, label: str, filters, tip: str, selected_tip: str,
                         selected_only: Setting[bool], optional: bool = False) -> None:
        """``self.layer`` and ``self.selected_only`` (its last state read from ``selected_only``), added to
        ``form``."""
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(filters)
        if optional:
            self.layer.setAllowEmptyLayer(True)
            self.layer.setLayer(None)
        self.layer.setToolTip(tip)
        self.selected_only = QCheckBox(tr("Selected features only"))
        self.selected_only.setChecked(selected_only.read())
        self.selected_only.setToolTip(selected_tip)
        form.addRow(label, self.layer)

    def layer_source(self) -> QgsProcessingFeatureSourceDefinition | None:
        """The picked layer as Processing reads it (only its selection if asked), or None."""
        layer = self.layer.currentLayer()
        if layer is None:
            return None
        return QgsProcessingFeatureSourceDefinition(layer.id(), self.selected_only.isChecked())

    def parameters(self) -> dict:
        raise NotImplementedError

    def remember(self) -> None:
        raise NotImplementedError

    def refusal(self) -> str | None:
        """A line for the log saying why not to start, checked before anything is saved; None to run."""
        return None

    @guarded
    def run(self) -> None:
        problem = self.refusal()
        if problem:
            self.controls.append(problem)
            return
        self.remember()
        self.controls.start(self.parameters())

    def cancel_running(self) -> None:
        self.controls.cancel()


def folder_widget(path: str, tip: str) -> QgsFileWidget:
    """A folder picker showing ``path``, with its tooltip: every folder field of the dock is one."""
    widget = QgsFileWidget()
    widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
    widget.setFilePath(path)
    widget.setToolTip(tip)
    return widget
