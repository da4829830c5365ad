"""Where the plugin's resources and the pure-Python model package live.

The plugin folder is self-contained in the ZIP (``model_utils`` and ``resources`` inside it) and,
in a checkout, reaches them through links; either way the plugin folder goes on ``sys.path`` so
``import model_utils`` works inside QGIS without installing anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
RESOURCES_DIR = PLUGIN_DIR / "resources"


def ensure_model_utils_importable() -> None:
    """Put the folder that holds ``model_utils`` on sys.path (idempotent)."""
    for candidate in (PLUGIN_DIR, PLUGIN_DIR.parent):
        if (candidate / "model_utils" / "__init__.py").is_file():
            if str(candidate) not in sys.path:
                sys.path.append(str(candidate))
            return


def resource(name: str) -> str:
    """Absolute path of a shipped resource (icon, QML style, .ui file)."""
    return str(RESOURCES_DIR / name)
