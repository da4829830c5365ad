"""Errors users see. Each message says what is wrong, where, and what to do."""

from __future__ import annotations


class GeoClipError(Exception):
    """Base class: an expected failure with a message meant for the user (not a bug)."""


class WeightsError(GeoClipError):
    """GeoCLIP weights are missing, unreadable, or do not have the expected keys and shapes."""


class BackboneUnavailable(GeoClipError):
    """The CLIP backbone cannot be loaded (offline and not cached, missing folder, wrong model)."""


class Canceled(GeoClipError):
    """The caller's ``is_canceled()`` returned True; work stopped between batches."""
