"""Translation hook: every text a user reads in the dock goes through ``tr`` (context "GeoCLIP"),
so a translation (a .ts/.qm pair loaded with a QTranslator) can replace it without code changes."""

from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication

CONTEXT = "GeoCLIP"


def tr(text: str) -> str:
    """``text`` in the user's language when a translation is installed, else unchanged."""
    return QCoreApplication.translate(CONTEXT, text)
