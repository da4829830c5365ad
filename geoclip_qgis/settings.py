"""User choices remembered between QGIS sessions (QgsSettings), mirrored to the model's env vars.

The Processing algorithms and ``model_utils`` read ``GEOCLIP_CLIP_MODEL``, ``GEOCLIP_WEIGHTS`` and
``GEOCLIP_CACHE_DIR``; the panel stores the user's choice and exports it so both see one value.
"""

from __future__ import annotations

import os

from qgis.core import QgsSettings

PREFIX = "geoclip/"
DEFAULT_CLIP = "openai/clip-vit-large-patch14"
ENV_KEYS = {
    "clip_model": "GEOCLIP_CLIP_MODEL",
    "weights": "GEOCLIP_WEIGHTS",
    "cache_dir": "GEOCLIP_CACHE_DIR",
}


def get(key: str, default: str = "") -> str:
    """A remembered value, or ``default``."""
    value = QgsSettings().value(PREFIX + key, default)
    return "" if value is None else str(value)


def put(key: str, value: str) -> None:
    """Remember ``value`` and export it to the environment variable the model reads."""
    QgsSettings().setValue(PREFIX + key, value)
    env = ENV_KEYS.get(key)
    if env:
        if value:
            os.environ[env] = value
        else:
            os.environ.pop(env, None)


def apply_to_environment() -> None:
    """Export remembered model choices at plugin start, unless the environment already sets them."""
    for key, env in ENV_KEYS.items():
        value = get(key)
        if value and not os.environ.get(env):
            os.environ[env] = value
