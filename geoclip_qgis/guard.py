"""Keep Python exceptions out of Qt: every slot, signal handler and task callback is guarded.

An exception that escapes into Qt's event loop aborts the whole interpreter on current PyQt5 and
PyQt6 builds ("Fatal Python error: Aborted"), taking QGIS down with it. ``@guarded`` catches it,
writes the traceback to QGIS's message log (tab "GeoCLIP") and shows one line to the user through
the owner's ``show_error(text)`` when it has one (the dock's log, the Setup tab).
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from qgis.core import Qgis, QgsMessageLog

from .i18n import tr

LOG_TAG = "GeoCLIP"
F = TypeVar("F", bound=Callable[..., Any])


def log_exception(where: str, exc: BaseException) -> str:
    """Write ``exc`` with its traceback to the message log; return the one-line text for the user."""
    text = f"{where} failed: {type(exc).__name__}: {exc}"
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    QgsMessageLog.logMessage(f"{text}\n{details}", LOG_TAG, Qgis.MessageLevel.Critical)
    return text


def error_line(text: str) -> str:
    """The line a widget's log shows for an unexpected error (the traceback is in the message log)."""
    return tr("ERROR: {error} (details in the message log, tab {tab})").format(error=text, tab=LOG_TAG)


def _positional_limit(func: Callable[..., Any]) -> int | None:
    """How many positional arguments ``func`` takes (None: any number).

    Qt passes a signal's arguments (``clicked`` sends ``checked``) and PyQt drops the extra ones when
    a plain slot refuses them; a wrapper taking ``*args`` would hide that, so it trims them itself.
    """
    params = inspect.signature(func).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
               for p in params)


def _shower(owner: object) -> Callable[[str], None] | None:
    """The owner's ``show_error``, or that of its run controls (the dock's tabs keep theirs there)."""
    for candidate in (owner, getattr(owner, "controls", None)):
        show = getattr(candidate, "show_error", None)
        if callable(show):
            return show
    return None


def guarded(func: F | None = None, *, default: Any = None) -> F:
    """Decorator for anything Qt or QGIS calls back: exceptions are logged and shown, never raised.

    ``default`` is returned after an exception (e.g. False for ``QgsTask.run``).
    """

    def wrap(inner: F) -> F:
        limit = _positional_limit(inner)
        where = inner.__qualname__

        @functools.wraps(inner)
        def call(*args: Any, **kwargs: Any) -> Any:
            if limit is not None:
                args = args[:limit]
            try:
                return inner(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - this is the last line before Qt
                text = log_exception(where, exc)
                show = _shower(args[0]) if args else None
                if show is not None:
                    try:
                        show(text)
                    except Exception as shown:  # noqa: BLE001 - the widget may be gone
                        log_exception(f"{where} (showing the error)", shown)
                return default

        return call  # type: ignore[return-value]

    return wrap(func) if func is not None else wrap  # type: ignore[return-value]
