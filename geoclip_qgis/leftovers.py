"""What an uninstalled GeoCLIP leaves on disk, said once when QGIS's Plugin Manager removes it.

QGIS deletes the plugin folder only. The packages the Setup tab installed and the gallery embedding cache live
elsewhere (they survive upgrades on purpose) and are large, so after an uninstall the user is told where they
are, how big, and how to remove them. ``unload()`` cannot tell an uninstall from a disable, an upgrade or
QGIS quitting: the Plugin Manager deletes the folder right after unloading, in the same call, so the check runs
on the next turn of the event loop and speaks only if the plugin folder is gone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QTimer

from .guard import guarded
from .i18n import tr
from .paths import PLUGIN_DIR


def mark_model_utils_stale() -> None:
    """Tell the next load of the plugin that the ``model_utils`` in memory belongs to this (unloaded) one."""
    module = sys.modules.get("model_utils")
    origin = getattr(module, "__file__", None)
    if origin and Path(origin).resolve().parent in {(c / "model_utils").resolve() for c in (PLUGIN_DIR,
                                                                                            PLUGIN_DIR.parent)}:
        module._geoclip_unloaded = True  # noqa: SLF001 - read by geoclip_qgis/__init__.py


def left_behind() -> list[tuple[str, Path]]:
    """(what, folder) for each folder GeoCLIP filled outside its plugin folder that exists now."""
    from . import settings
    from .setup.installer import deps_folder

    found = [(tr("the Python packages the Setup tab installed"), deps_folder())]
    cache = settings.CACHE_DIR.read().strip() or os.environ.get("GEOCLIP_CACHE_DIR", "")
    if not cache:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = str(Path(base) / "geoclip-qgis")  # model_utils.model.gallery.default_cache_dir, without numpy
    found.append((tr("the gallery embedding cache"), Path(cache).expanduser()))
    return [(what, folder) for what, folder in found if folder.is_dir()]


def _size(folder: Path) -> str:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # a file that went away while counting
    return f"{total / 1e9:.1f} GB" if total >= 1e8 else f"{total / 1e6:.0f} MB"


def uninstall_message(stays: list[tuple[str, Path]]) -> str:
    """The text: each folder with its size, and how to remove it."""
    listed = "; ".join(f"{what}: {folder} ({_size(folder)})" for what, folder in stays)
    return tr("GeoCLIP was uninstalled. QGIS removed the plugin folder; it left {0}. Nothing else uses them: "
              "delete those folders to free the space, or keep them and a reinstalled GeoCLIP reuses them. The "
              "CLIP backbone, if it was downloaded, stays in the Hugging Face cache (shared with other "
              "software).").format(listed)


def say_if_uninstalled_later(iface) -> None:
    """After this turn of the event loop: if the plugin folder is gone, say what stayed behind (message log and
    message bar, at Info level)."""
    try:
        stays = left_behind()
    except Exception as exc:  # noqa: BLE001 - unload must finish whatever this finds
        QgsMessageLog.logMessage(f"GeoCLIP could not list the folders it leaves: {exc}", "GeoCLIP",
                                 Qgis.MessageLevel.Info)
        return

    @guarded
    def check() -> None:
        if PLUGIN_DIR.exists() or not stays:
            return
        text = uninstall_message(stays)
        QgsMessageLog.logMessage(text, "GeoCLIP", Qgis.MessageLevel.Info)
        bar = getattr(iface, "messageBar", None)
        if callable(bar) and bar() is not None:
            bar().pushMessage("GeoCLIP", text, Qgis.MessageLevel.Info, 0)

    QTimer.singleShot(0, check)
