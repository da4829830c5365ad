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


class ForeignModelUtils(ImportError):
    """Another package named ``model_utils`` (another plugin's, a folder on PYTHONPATH) would be imported
    in place of GeoCLIP's own: refused with a message, never used silently."""


def ensure_model_utils_importable() -> None:
    """Make ``import model_utils`` give GeoCLIP's own package (idempotent), or raise ForeignModelUtils.

    The plugin folder goes at the end of ``sys.path`` (at the front its module names would shadow other
    packages), so whatever answers to ``model_utils`` first is checked to be ours."""
    import importlib.util

    home = next((c for c in (PLUGIN_DIR, PLUGIN_DIR.parent) if (c / "model_utils" / "__init__.py").is_file()), None)
    if home is None:
        raise ImportError(f"GeoCLIP's model_utils package is missing from {PLUGIN_DIR}: reinstall the plugin.",
                          name="model_utils")
    if str(home) not in sys.path:
        sys.path.append(str(home))
    loaded = sys.modules.get("model_utils")
    origin = getattr(loaded, "__file__", None) if loaded is not None else getattr(
        importlib.util.find_spec("model_utils"), "origin", None)
    ours = (home / "model_utils").resolve()
    if origin is None or Path(origin).resolve().parent != ours:
        raise ForeignModelUtils(
            f"Another Python package named 'model_utils' ({origin or 'a namespace package'}) comes before "
            f"GeoCLIP's own ({ours}), probably from another plugin or a folder on PYTHONPATH. GeoCLIP will not "
            "run with it: remove or rename that package (or disable the plugin that brings it) and restart QGIS.",
            name="model_utils")


def resource(name: str) -> str:
    """Absolute path of a shipped resource (icon, QML style, .ui file)."""
    return str(RESOURCES_DIR / name)


def file_safe(name: str, fallback: str) -> str:
    """``name`` as a file name on any system: letters, digits, '-', '_' and '.' kept, the rest '_'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or fallback
