"""What photo and text geolocation share: their parameters, the frozen job, the run, its temperature fit and the
regional gallery. The two algorithms differ only in an ``InputKind``."""

from __future__ import annotations

from .job import GeolocationJob, InputKind, prepare
from .parameters import add_parameters
from .run import run

__all__ = ["GeolocationJob", "InputKind", "add_parameters", "prepare", "run"]
