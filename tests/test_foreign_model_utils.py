"""Another package named ``model_utils`` earlier on sys.path (another plugin's): the plugin still loads,
refuses to run with one message naming both packages, and never executes the foreign code."""

from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import Qgis, QgsApplication

ROOT = Path(__file__).resolve().parents[1]


def _foreign_package(folder: Path, sentinel: Path) -> Path:
    """A ``model_utils`` whose every module records that it ran (the plugin must never import it)."""
    package = folder / "model_utils"
    package.mkdir(parents=True)
    record = f"from pathlib import Path\nPath({str(sentinel)!r}).write_text(__name__)\n"
    for name in ("__init__.py", "constants.py", "safe_files.py", "errors.py"):
        (package / name).write_text(record)
    return package


def test_a_foreign_model_utils_leaves_the_plugin_loaded_and_runs_none_of_it(qgis_iface, message_log, tmp_path):
    sentinel = tmp_path / "foreign-code-ran"
    foreign = _foreign_package(tmp_path / "other_plugin", sentinel)
    saved_modules, saved_path = dict(sys.modules), list(sys.path)
    for name in list(sys.modules):  # a fresh interpreter's view: neither package imported yet
        if name.split(".")[0] in ("model_utils", "geoclip_qgis"):
            del sys.modules[name]
    sys.path.insert(0, str(foreign.parent))
    registry = QgsApplication.processingRegistry()
    if registry.providerById("geoclip") is not None:
        registry.removeProvider(registry.providerById("geoclip"))
    try:
        import geoclip_qgis

        plugin = geoclip_qgis.classFactory(qgis_iface)
        plugin.initGui()  # raised into QGIS before: the dock imported model_utils.constants
        try:
            refused = plugin.refused
            assert str(foreign / "__init__.py") in refused and str(ROOT / "model_utils") in refused
            assert "remove or rename" in refused
            critical = [text for text, tag, level in message_log
                        if tag == "GeoCLIP" and level == int(Qgis.MessageLevel.Critical)]
            assert critical == [refused]  # said once, in full

            provider = registry.providerById("geoclip")  # registered, offering nothing to run
            assert provider is plugin.provider and provider.algorithms() == []
            assert provider.warningMessage() == refused
            assert registry.algorithmById("geoclip:geolocatephotos") is None

            assert plugin.action is not None and plugin.action.text() == "GeoCLIP panel"
            plugin.action.setChecked(True)  # the button shows the dock, which says why
            assert plugin.dock.isVisible() and plugin.dock.windowTitle() == "GeoCLIP"
            shown = plugin.dock.message.text()
            assert "GeoCLIP cannot run" in shown and str(foreign / "__init__.py") in shown
            assert str(ROOT / "model_utils") in shown and plugin.dock.task_tabs() == []
        finally:
            plugin.unload()
        assert registry.providerById("geoclip") is None and plugin.dock is None
        assert not sentinel.exists(), f"foreign code ran: {sentinel.read_text()}"
        assert not any(name.split(".")[0] == "model_utils" for name in sys.modules)  # not even found and cached
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - set(saved_modules):
            del sys.modules[name]
        sys.modules.update(saved_modules)
