"""The first-run download of the CLIP backbone, against a local stand-in for the hub (``tests/hub_standin.py``)
with the real ``huggingface_hub`` client: progress in bytes, Cancel, a cut connection, the cache reused with
the hub gone, a proxy, and a hub that is down or silent. Loopback only; no network."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from PIL import Image

from model_utils.model.backbone import DEFAULT_CLIP
from tests.hub_standin import COMMIT, HubStandIn

REPO_DIR = "models--" + DEFAULT_CLIP.replace("/", "--")


@pytest.fixture()
def hub(online_hub, tiny_clip, monkeypatch):
    """The stand-in serving the tiny CLIP as ``openai/clip-vit-large-patch14``, set as HF_ENDPOINT; GeoCLIP's
    backbone left at its default (no GEOCLIP_CLIP_MODEL), as on a user's first run."""
    from huggingface_hub import constants

    monkeypatch.delenv("GEOCLIP_CLIP_MODEL", raising=False)
    # huggingface_hub reads 10 MB per progress step; the tiny model is 0.8 MB, so read it in steps of 16 kB
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    server = HubStandIn({DEFAULT_CLIP: tiny_clip})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()


class Recorder:
    """progress / is_canceled callbacks that remember what they were told, and cancel on request."""

    def __init__(self, cancel_after_bytes: bool = False):
        self.calls: list[tuple[float, str]] = []
        self.cancel_after_bytes = cancel_after_bytes

    def progress(self, fraction: float, message: str) -> None:
        self.calls.append((fraction, message))

    def is_canceled(self) -> bool:
        return self.cancel_after_bytes and any(f > 0 for f, _ in self.calls)


def _embedding(model) -> np.ndarray:
    import torch

    pixels = model.processor(images=[Image.new("RGB", (64, 48), (120, 160, 200))], return_tensors="pt")
    with torch.inference_mode():
        return model.embed_pixels(pixels["pixel_values"]).numpy()


def _fresh_model():
    from model_utils import GeoCLIP

    return GeoCLIP.from_pretrained(device="cpu")


def _no_partial_files(cache) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.name.endswith(".incomplete"))


def test_first_run_downloads_with_byte_progress_into_the_hub_cache(hub, online_hub, tiny_clip):
    from model_utils import GeoCLIP

    rec = Recorder()
    model = _fresh_model()
    model.load_backbone(rec.progress, rec.is_canceled)

    # progress in bytes, rising to the whole download
    fractions = [f for f, _ in rec.calls]
    assert len(rec.calls) > 10 and fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert rec.calls[-1][1].startswith(f"Downloading the CLIP backbone {DEFAULT_CLIP}: ")
    assert rec.calls[-1][1].endswith("kB of 805.1 kB")  # config + image processor + tokenizer + weights
    # the hub cache's own layout: a snapshot of the commit, refs/main pointing at it, blobs
    repo = online_hub / REPO_DIR
    assert (repo / "refs" / "main").read_text() == COMMIT
    snapshot = repo / "snapshots" / COMMIT
    assert {p.name for p in snapshot.iterdir()} == {p.name for p in tiny_clip.iterdir()}
    assert (snapshot / "model.safetensors").resolve().parent == repo / "blobs"
    assert _no_partial_files(online_hub) == []
    # the downloaded backbone is the served one
    local = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu")
    np.testing.assert_allclose(_embedding(model), _embedding(local), atol=1e-6)


def test_second_run_uses_the_cache_with_the_hub_gone(hub, online_hub, monkeypatch):
    _fresh_model().load_backbone()
    hub.stop()
    for offline in (False, True):  # the hub refusing connections, then HF_HUB_OFFLINE set as well
        if offline:
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        model = _fresh_model()
        model.load_backbone()
        model.load_text_tower()  # the tokenizer came with the first download
        assert model.embed_texts(["a beach"]).shape == (1, 512)


def test_cancel_mid_download_keeps_nothing_and_the_next_run_starts_clean(hub, online_hub):
    from model_utils.errors import Canceled
    from model_utils.model.hub_download import cached_snapshot

    hub.throttle = 0.01  # ~1.6 MB/s: the weights take half a second, so Cancel lands mid-file
    rec = Recorder(cancel_after_bytes=True)
    with pytest.raises(Canceled, match="cancelled; nothing partial is kept"):
        _fresh_model().load_backbone(rec.progress, rec.is_canceled)
    assert len(hub.gets("model.safetensors")) <= 1
    assert _no_partial_files(online_hub) == []
    assert not list((online_hub / REPO_DIR / "blobs").glob("*")) or not any(
        p.stat().st_size > 100_000 for p in (online_hub / REPO_DIR / "blobs").iterdir())
    assert cached_snapshot(DEFAULT_CLIP, "vision") is None

    hub.throttle = 0.0
    model = _fresh_model()
    model.load_backbone()
    assert _embedding(model).shape == (1, 512)
    assert hub.gets("model.safetensors")[-1].range is None  # restarted from byte 0, not appended to a stub


def test_a_cut_connection_resumes_with_a_range_request(hub, online_hub, tiny_clip):
    hub.cut_after, hub.cuts = 300_000, 1
    model = _fresh_model()
    model.load_backbone()
    weights = hub.gets("model.safetensors")
    assert len(weights) == 2 and weights[0].range is None
    resumed_at = int(weights[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 300_000  # from the last whole chunk on disk, not from byte 0
    blob = (online_hub / REPO_DIR / "snapshots" / COMMIT / "model.safetensors").read_bytes()
    assert blob == (tiny_clip / "model.safetensors").read_bytes()


def test_a_connection_cut_every_time_fails_clearly_and_leaves_no_half_model(hub, online_hub):
    from model_utils.errors import BackboneUnavailable
    from model_utils.model.hub_download import cached_snapshot

    hub.cut_after, hub.cuts = 100_000, 1000
    with pytest.raises(BackboneUnavailable) as caught:
        _fresh_model().load_backbone()
    message = str(caught.value)
    assert "downloading model.safetensors from" in message and "run again" in message
    assert "GEOCLIP_CLIP_MODEL" in message
    assert _no_partial_files(online_hub) == []
    assert cached_snapshot(DEFAULT_CLIP, "vision") is None  # config.json is cached, the model is not

    hub.cuts = 0
    model = _fresh_model()
    model.load_backbone()
    assert _embedding(model).shape == (1, 512)


def test_the_download_goes_through_the_proxy_of_the_environment(hub, online_hub, monkeypatch):
    # a hub host only the proxy can resolve: without the proxy nothing would connect
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.geoclip-test.invalid")
    monkeypatch.setenv("HTTP_PROXY", hub.url)
    model = _fresh_model()
    model.load_backbone()
    assert _embedding(model).shape == (1, 512)
    assert hub.requests and all(r.proxied for r in hub.requests)
    assert hub.gets("model.safetensors")


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unreachable_hub_fails_within_ten_seconds_with_what_to_do(online_hub, monkeypatch, kind):
    from model_utils.errors import BackboneUnavailable

    monkeypatch.delenv("GEOCLIP_CLIP_MODEL", raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    if kind == "silent":
        server.listen(4)  # the kernel accepts connections; nothing ever answers
    port = server.getsockname()[1]
    if kind == "refused":
        server.close()  # nothing listens on that port any more
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    model = _fresh_model()  # outside the clock: only the backbone's way to the hub is timed
    try:
        start = time.monotonic()
        with pytest.raises(BackboneUnavailable) as caught:
            model.load_backbone()
        elapsed = time.monotonic() - start
    finally:
        server.close()
    # not a race: the probe's thread join gives up after PROBE_SECONDS + 1 s (5 s) whatever the load, and
    # nothing else on this path waits on the network
    assert elapsed < 10.0
    message = str(caught.value)
    assert "hub cannot be reached" in message and "GEOCLIP_CLIP_MODEL" in message and "1.7 GB" in message


# ---------------------------------------------------------------------- in QGIS Processing
def _recording_feedback(cancel_mid_download: bool = False):
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.texts: list[str] = []

        def setProgressText(self, text):  # noqa: N802 - QGIS API
            self.texts.append(text)
            if cancel_mid_download and text.startswith("Downloading") and not text.startswith(
                    f"Downloading the CLIP backbone {DEFAULT_CLIP}: 0 bytes"):
                self.cancel()
            super().setProgressText(text)

    return Feedback()


def test_the_algorithm_shows_the_download_in_bytes_and_cancel_stops_it(geoclip_provider, hub, online_hub, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    from model_utils.model.geoclip import release_shared_model
    from tools.samples.photos import write_photos

    write_photos(tmp_path / "in", n=1)
    params = {"FOLDER": str(tmp_path / "in"), "TOP_K": 1, "CELL_SIZE": 10.0, "OUTPUT_FOLDER": str(tmp_path / "out")}
    release_shared_model()
    try:
        hub.throttle = 0.01
        feedback = _recording_feedback(cancel_mid_download=True)
        with pytest.raises(QgsProcessingException, match="Canceled"):
            processing.run("geoclip:geolocatephotos", params, feedback=feedback)
        assert any(t.startswith(f"Downloading the CLIP backbone {DEFAULT_CLIP}") for t in feedback.texts)
        assert _no_partial_files(online_hub) == []
        assert not any(p.name.startswith("run_") for p in (tmp_path / "out").iterdir())

        hub.throttle = 0.0
        feedback = _recording_feedback()
        out = processing.run("geoclip:geolocatephotos", params, feedback=feedback)
        downloads = [t for t in feedback.texts if t.startswith("Downloading the CLIP backbone")]
        assert downloads and downloads[-1].endswith("805.1 kB of 805.1 kB")
        assert out["N_PHOTOS"] == 1 and out["N_FAILED"] == 0
    finally:
        release_shared_model()
