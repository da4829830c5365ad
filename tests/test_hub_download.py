"""The first-run download of the CLIP backbone, against a local stand-in for the hub (``tests/hub_standin.py``)
with the real ``huggingface_hub`` client: progress in bytes, Cancel, a cut connection, the cache reused with
the hub gone, a proxy, a hub that is down or silent, and the pinned revision (the default backbone's commit,
a user's ``repo@revision``) holding while the hub repo moves on. Loopback only; no network."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
from PIL import Image

from model_utils.constants import DEFAULT_CLIP_REVISION
from model_utils.model.backbone import DEFAULT_CLIP
from tests.hub_standin import HubStandIn

REPO_DIR = "models--" + DEFAULT_CLIP.replace("/", "--")


@pytest.fixture()
def hub(online_hub, tiny_clip, monkeypatch):
    """The stand-in serving the tiny CLIP as ``openai/clip-vit-large-patch14``, set as HF_ENDPOINT; GeoCLIP's
    backbone left at its default (no GEOCLIP_CLIP_MODEL), as on a user's first run."""
    from huggingface_hub import constants

    monkeypatch.delenv("GEOCLIP_CLIP_MODEL", raising=False)
    # the download reads up to 1 MiB per step (hub_download.CHUNK_BYTES); the tiny model is 0.8 MB: 16 kB steps
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    server = HubStandIn({DEFAULT_CLIP: tiny_clip}, commits={DEFAULT_CLIP: DEFAULT_CLIP_REVISION})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()


class Recorder:
    """progress / is_canceled callbacks that remember what they were told, and cancel once the download has
    reached ``cancel_at`` (a fraction of all its bytes)."""

    def __init__(self, cancel_at: float | None = None):
        self.calls: list[tuple[float, str]] = []
        self.cancel_at = cancel_at

    def progress(self, fraction: float, message: str) -> None:
        self.calls.append((fraction, message))

    def is_canceled(self) -> bool:
        return self.cancel_at is not None and any(f >= self.cancel_at for f, _ in self.calls)


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
    # the hub cache's own layout: a snapshot of the pinned commit (no branch ref: main was never asked), blobs
    repo = online_hub / REPO_DIR
    assert not (repo / "refs" / "main").exists()
    snapshot = repo / "snapshots" / DEFAULT_CLIP_REVISION
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


def test_cancel_mid_download_keeps_nothing_and_the_next_run_starts_clean(hub, online_hub, tiny_clip):
    from model_utils.errors import Canceled
    from model_utils.model.hub_download import cached_snapshot

    # the weights are ~98 % of the 805 kB: a cancel at half the bytes lands inside model.safetensors, whose
    # chunks (16 kB here) each ask is_canceled
    weights_size = (tiny_clip / "model.safetensors").stat().st_size
    rec = Recorder(cancel_at=0.5)
    with pytest.raises(Canceled, match="cancelled; nothing partial is kept"):
        _fresh_model().load_backbone(rec.progress, rec.is_canceled)
    assert 0.5 <= rec.calls[-1][0] < 0.9  # stopped inside the weights, well before their end
    assert len(hub.gets("model.safetensors")) == 1 and hub.gets("model.safetensors")[0].range is None
    assert _no_partial_files(online_hub) == []
    blobs = online_hub / REPO_DIR / "blobs"
    assert not any(p.stat().st_size >= weights_size // 4 for p in blobs.iterdir())  # no piece of the weights
    assert cached_snapshot(DEFAULT_CLIP, "vision") is None and cached_snapshot(DEFAULT_CLIP, "text") is None

    model = _fresh_model()
    model.load_backbone()
    assert _embedding(model).shape == (1, 512)
    weights = hub.gets("model.safetensors")
    assert len(weights) == 2 and weights[1].range is None  # restarted from byte 0, not appended to a stub


def test_a_large_file_is_read_in_chunks_of_at_most_a_mebibyte(online_hub, tmp_path, monkeypatch):
    """Without the tests' 16 kB chunks: huggingface_hub's own 10 MB would let Cancel and the byte progress
    wait tens of seconds on a slow line; the download reads at most hub_download.CHUNK_BYTES per step."""
    import json

    from huggingface_hub import constants

    from model_utils.model import hub_download

    assert hub_download.CHUNK_BYTES <= 1024 * 1024
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (folder / "preprocessor_config.json").write_text("{}")
    size = 3 * 1024 * 1024 + 123
    (folder / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(size))
    server = HubStandIn({"geoclip-test/big": folder})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    default = constants.DOWNLOAD_CHUNK_SIZE
    rec = Recorder()
    try:
        snapshot = hub_download.download("geoclip-test/big", "vision", rec.progress, rec.is_canceled)
    finally:
        server.stop()
    assert (snapshot / "model.safetensors").stat().st_size == size
    small = sum(p.stat().st_size for p in folder.iterdir()) - size
    in_weights = [f for f, _ in rec.calls if f * (small + size) > small]
    assert len(in_weights) >= 4  # 3 MiB + 123 bytes in steps of at most 1 MiB (one step with 10 MB chunks)
    assert constants.DOWNLOAD_CHUNK_SIZE == default  # as it was, after the download


def test_a_cut_connection_resumes_with_a_range_request(hub, online_hub, tiny_clip):
    hub.cut_after, hub.cuts = 300_000, 1
    model = _fresh_model()
    model.load_backbone()
    weights = hub.gets("model.safetensors")
    assert len(weights) == 2 and weights[0].range is None
    resumed_at = int(weights[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 300_000  # from the last whole chunk on disk, not from byte 0
    blob = (online_hub / REPO_DIR / "snapshots" / DEFAULT_CLIP_REVISION / "model.safetensors").read_bytes()
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
    # "within 10 s", proven by what is waited on instead of a clock: the probe alone, bounded by its thread
    # join (PROBE_SECONDS + 1 s), and never huggingface_hub's own 10 s (metadata) + 60 s (read) timeouts
    from model_utils.model import backbone, hub_download

    probes: list[bool] = []
    joins: list[float | None] = []
    real_probe, real_join = backbone.hub_reachable, threading.Thread.join

    def join(self, timeout=None):
        if self.name == "geoclip-hub-probe":
            joins.append(timeout)
        return real_join(self, timeout)

    def no_download(*_args, **_kwargs):
        pytest.fail("the download was started: it would wait on huggingface_hub's own timeouts")

    monkeypatch.setattr(backbone, "hub_reachable", lambda: probes.append(real_probe()) or probes[-1])
    monkeypatch.setattr(threading.Thread, "join", join)
    monkeypatch.setattr(hub_download, "download", no_download)
    model = _fresh_model()
    try:
        with pytest.raises(BackboneUnavailable) as caught:
            model.load_backbone()
    finally:
        server.close()
    assert probes == [False] and joins == [backbone.PROBE_SECONDS + 1.0] and joins[0] < 10.0
    message = str(caught.value)
    assert "hub cannot be reached" in message and "GEOCLIP_CLIP_MODEL" in message and "1.7 GB" in message


# ---------------------------------------------------------------------- in QGIS Processing
def _downloaded_share(text: str) -> float | None:
    """The share of the download a "Downloading ...: 402.6 kB of 805.1 kB" text reports, else None."""
    import re

    units = {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    found = re.search(r": ([\d.]+) (bytes|kB|MB|GB) of ([\d.]+) (bytes|kB|MB|GB)$", text)
    if not text.startswith("Downloading the CLIP backbone") or found is None:
        return None
    done, total = (float(found[i]) * units[found[i + 1]] for i in (1, 3))
    return done / total


def _recording_feedback(cancel_at: float | None = None):
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.texts: list[str] = []
            self.infos: list[str] = []

        def pushInfo(self, info):  # noqa: N802 - QGIS API
            self.infos.append(info)
            super().pushInfo(info)

        def setProgressText(self, text):  # noqa: N802 - QGIS API
            self.texts.append(text)
            share = _downloaded_share(text)
            if cancel_at is not None and share is not None and share >= cancel_at:
                self.cancel()  # as the Cancel button would, with half the bytes in
            super().setProgressText(text)

    return Feedback()


def test_the_algorithm_shows_the_download_in_bytes_and_cancel_stops_it(geoclip_provider, hub, online_hub, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    from model_utils.model.geoclip import release_shared_model
    from model_utils.model.hub_download import cached_snapshot
    from tools.samples.photos import write_photos

    write_photos(tmp_path / "in", n=1)
    params = {"FOLDER": str(tmp_path / "in"), "TOP_K": 1, "CELL_SIZE": 10.0, "OUTPUT_FOLDER": str(tmp_path / "out")}
    release_shared_model()
    try:
        feedback = _recording_feedback(cancel_at=0.5)
        with pytest.raises(QgsProcessingException, match="Canceled"):
            processing.run("geoclip:geolocatephotos", params, feedback=feedback)
        shares = [s for s in map(_downloaded_share, feedback.texts) if s is not None]
        assert shares and 0.5 <= shares[-1] < 1.0  # canceled inside the weights, as the texts showed
        assert len(hub.gets("model.safetensors")) == 1
        assert _no_partial_files(online_hub) == []
        assert cached_snapshot(DEFAULT_CLIP, "vision") is None
        assert not any(p.name.startswith("run_") for p in (tmp_path / "out").iterdir())

        feedback = _recording_feedback()
        out = processing.run("geoclip:geolocatephotos", params, feedback=feedback)
        downloads = [t for t in feedback.texts if t.startswith("Downloading the CLIP backbone")]
        assert downloads and downloads[-1].endswith("805.1 kB of 805.1 kB")
        assert len(hub.gets("model.safetensors")) == 2 and hub.gets("model.safetensors")[1].range is None
        assert out["N_PHOTOS"] == 1 and out["N_FAILED"] == 0
        # the run's log names the weights it ran: the repo and the pinned commit
        assert any(i.startswith(f"CLIP backbone {DEFAULT_CLIP} at revision {DEFAULT_CLIP_REVISION}, from the "
                                "Hugging Face cache") for i in feedback.infos), feedback.infos
    finally:
        release_shared_model()
