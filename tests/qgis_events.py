"""Waiting on QGIS's event loop, and pointing a geolocation tab at a folder: shared by the dock tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """Process Qt events until ``predicate()`` holds; fail the test after ``timeout`` seconds."""
    from qgis.core import QgsApplication

    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    assert predicate(), "timed out"


def use_folder(tab, folder: str | Path, out: str | Path) -> None:
    """Photos from ``folder`` only (no files, no layer), outputs under ``out``."""
    tab.files.setFilePath("")
    tab.layer.setLayer(None)
    tab.folder.setFilePath(str(folder))
    tab.output.setFilePath(str(out))


def settle_canvas(iface) -> None:
    """Let the map canvas finish drawing before a test removes the layers it draws: a canvas zoomed to a run's
    results renders in worker threads, and layers pulled out from under them within milliseconds (as no user
    can) corrupted memory on QGIS 3.40, seen later as a crash in the garbage collector."""
    canvas = iface.mapCanvas()
    if canvas is not None:
        canvas.waitWhileRendering()
