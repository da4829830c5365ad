"""Freed memory goes back to the system after every GeoCLIP algorithm, whether it succeeds or fails."""

from __future__ import annotations

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

import model_utils.memory as memory
from geoclip_qgis.processing.base import GeoClipAlgorithm


class _Alg(GeoClipAlgorithm):
    """The smallest algorithm: ``process`` answers or raises as told."""

    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.fail = fail

    def name(self) -> str:
        return "memorytest"

    def createInstance(self):  # noqa: N802 - QGIS API
        return _Alg(self.fail)

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        pass

    def process(self, parameters, context, feedback) -> dict:
        buffers = [bytearray(1 << 20) for _ in range(64)]  # what a run frees: 64 MB in its own thread
        del buffers
        if self.fail:
            raise QgsProcessingException("told to fail")
        return {"OK": True}


@pytest.mark.parametrize("fail", [False, True])
def test_every_algorithm_returns_freed_memory_after_it_ends(qgis_app, monkeypatch, fail):  # noqa: ARG001
    calls = []
    monkeypatch.setattr(memory, "return_freed_memory", lambda: calls.append(True) or True)
    alg = _Alg(fail)
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    if fail:
        with pytest.raises(QgsProcessingException, match="told to fail"):
            alg.processAlgorithm({}, context, feedback)
    else:
        assert alg.processAlgorithm({}, context, feedback) == {"OK": True}
    assert calls == [True]


def test_glibc_gives_its_free_pages_back():
    """On Debian (glibc, where the suite runs) the trim is found and answers; elsewhere it is a no-op."""
    assert memory._malloc_trim() is not None  # noqa: SLF001
    assert isinstance(memory.return_freed_memory(), bool)
