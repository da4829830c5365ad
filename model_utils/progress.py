"""The two callbacks every long model_utils step takes, so a caller (the QGIS side, the batch job, a script)
can show progress and stop it, and model_utils never sees a Qt object."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is happening)
IsCanceled = Callable[[], bool]  # True once the caller wants the work stopped (checked between steps)
