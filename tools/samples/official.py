"""Import the official GeoCLIP modules from the installed wheel without running its ``__init__``.

``geoclip/__init__.py`` pulls in torchvision through its training code; a namespace stub for the
top package lets ``geoclip.model`` import on its own, exactly as shipped.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

from model_utils.model.weights import wheel_package_dir


def official_model_package():
    """The ``geoclip.model`` package of the wheel (GeoCLIP, LocationEncoder, ImageEncoder)."""
    if "geoclip.model" in sys.modules:
        return sys.modules["geoclip.model"]
    pkg_dir = wheel_package_dir()
    if pkg_dir is None:
        raise RuntimeError("the geoclip wheel is not installed (make install does it)")
    stub = types.ModuleType("geoclip")
    stub.__path__ = [str(pkg_dir)]
    stub.__spec__ = importlib.machinery.ModuleSpec("geoclip", None, is_package=True)
    stub.__spec__.submodule_search_locations = [str(pkg_dir)]
    sys.modules["geoclip"] = stub
    import geoclip.model as model_pkg

    return model_pkg


def kauai_png():
    """The example photo shipped inside the wheel."""
    return wheel_package_dir() / "images" / "Kauai.png"
