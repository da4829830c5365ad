"""GeoCLIP model core: fidelity to the official implementation, caching, errors, offline behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model_utils import GeoCLIP
from model_utils.errors import BackboneUnavailable, WeightsError
from model_utils.model.gallery import Gallery, cache_path
from tests.network_guard import forbid_network
from tools.samples.official import kauai_png, official_model_package
from tools.samples.photos import write_gps_photo, write_photos


@pytest.fixture(scope="module")
def model(tiny_clip):
    return GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu")


@pytest.fixture(scope="module")
def official(tiny_clip):
    pkg = official_model_package()
    torch.manual_seed(0)
    return pkg.GeoCLIP(from_pretrained=True, clip_path=str(tiny_clip)).eval()


def test_location_embeddings_match_official_on_10k_points(model):
    pkg = official_model_package()
    reference = pkg.LocationEncoder(from_pretrained=True).eval()
    rng = np.random.default_rng(42)
    latlon = np.column_stack([rng.uniform(-90, 90, 10_000), rng.uniform(-180, 180, 10_000)])
    ours = model.encode_locations(latlon)
    with torch.inference_mode():
        ref = reference(torch.from_numpy(latlon.astype(np.float32))).numpy()
    assert ours.shape == (10_000, 512) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-5
    unit = model.encode_locations(latlon[:5], normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)


def test_preprocessing_matches_official_processor(model, official, tmp_path):
    photos = write_photos(tmp_path, n=3) + [kauai_png()]
    for path in photos:
        with Image.open(path) as img:
            ref = official.image_encoder.preprocess_image(img.convert("RGB"))
        ours = model.processor(images=[Image.open(path).convert("RGB")], return_tensors="pt")["pixel_values"]
        assert ours.shape == ref.shape == (1, 3, 224, 224)
        assert torch.equal(ours, ref), path


@pytest.fixture()
def official_gallery_encoded_once(official, monkeypatch):
    """The official model with its location encoder run once on the 100K gallery, not in every forward():
    its predict() and forward() (official code, unchanged) both get that one output, bit for bit what a
    second encoding gives, and the test pays about 11 s for it instead of twice that."""
    encoder, memo = official.location_encoder, {}
    encode = encoder.forward

    def forward(location):
        if location is not official.gps_gallery:
            return encode(location)
        if "gallery" not in memo:
            memo["gallery"] = encode(location)
        return memo["gallery"]

    monkeypatch.setattr(encoder, "forward", forward)
    yield official
    assert "gallery" in memo, "the official code no longer encodes its gallery in forward()"


@pytest.mark.slow
def test_image_path_matches_official_predict(model, official_gallery_encoded_once, tmp_path):
    official = official_gallery_encoded_once
    photos = write_photos(tmp_path, n=3) + [kauai_png()]
    ours = model.predict(photos, top_k=5, batch_size=2)
    # official predict() on one photo (it encodes the 100K gallery on every call) ...
    ref_gps, ref_prob = official.predict(str(photos[-1]), top_k=5)
    assert ours[-1].error is None
    np.testing.assert_allclose(ours[-1].prob, ref_prob.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.column_stack([ours[-1].lat, ours[-1].lon]), ref_gps.numpy(), atol=1e-5)
    # ... and its forward() on all photos at once for the full probability vectors.
    with torch.inference_mode():
        pixels = torch.cat([official.image_encoder.preprocess_image(Image.open(p).convert("RGB")) for p in photos])
        ref_probs = official.forward(pixels, official.gps_gallery).softmax(dim=-1).numpy()
    gallery = official.gps_gallery.numpy()
    for pred, ref in zip(ours, ref_probs):
        top5 = np.argsort(-ref, kind="stable")[:5]
        # The 100K gallery repeats some coordinates; repeated points tie exactly and may swap places,
        # so the top-5 are compared as locations, and as indices wherever the probability is not tied.
        np.testing.assert_array_equal(gallery[pred.indices], gallery[top5])
        untied = [i for i in range(5) if np.sum(np.isclose(ref, ref[top5[i]], rtol=0, atol=1e-9)) == 1]
        assert [pred.indices[i] for i in untied] == [top5[i] for i in untied]
        np.testing.assert_allclose(pred.prob, ref[top5], atol=1e-5)
        np.testing.assert_allclose(pred.gallery_probs, ref, atol=1e-5)
        assert pred.gallery_probs.shape == (100_000,)
        assert abs(pred.gallery_probs.sum() - 1) < 1e-4


def test_predict_bad_files_do_not_stop_the_batch(model, tmp_path):
    good = write_photos(tmp_path, n=2)
    missing = tmp_path / "nope.jpg"
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    gps_photo = write_gps_photo(tmp_path / "gps.jpg", -33.8568, 151.2153)
    preds = model.predict([good[0], missing, text, gps_photo, good[1], Image.new("L", (64, 48), 128)], top_k=3)
    assert [p.error is None for p in preds] == [True, False, False, True, True, True]
    assert "nope.jpg" in preds[1].error and "notes.jpg" in preds[2].error
    assert preds[1].prob.size == 0 and preds[1].gallery_probs.size == 0
    assert preds[3].gps == pytest.approx((-33.8568, 151.2153), abs=1e-4)
    for p in (preds[0], preds[3], preds[4], preds[5]):
        assert p.lat.shape == p.lon.shape == p.prob.shape == (3,)
        assert np.all(np.diff(p.prob) <= 0)  # best first


def test_progress_and_cancel_between_batches(model, tmp_path):
    photos = write_photos(tmp_path, n=5)
    seen = []
    model.predict(photos, top_k=1, batch_size=2, progress=lambda f, _m: seen.append(f))
    assert seen == pytest.approx([0.4, 0.8, 1.0])
    from model_utils.errors import Canceled

    calls = {"n": 0}

    def cancel_after_first():
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(Canceled):
        model.predict(photos, top_k=1, batch_size=2, is_canceled=cancel_after_first)


def test_gallery_cache_is_reused_and_corruption_rebuilds(tiny_clip, tmp_path, caplog):
    model = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu", cache_dir=tmp_path)
    rng = np.random.default_rng(3)
    gallery = Gallery(np.column_stack([rng.uniform(-60, 60, 3000), rng.uniform(-180, 180, 3000)]), name="t")
    model.set_gallery(gallery)
    first = model.gallery_embeddings().clone()
    path, _ = cache_path(gallery, model.files.fingerprint(), tmp_path)
    assert path.is_file() and not list(tmp_path.glob(".*.tmp"))
    np.testing.assert_allclose(first.numpy(), model.encode_locations(gallery.latlon, normalize=True), atol=1e-6)
    # a fresh model reads the cache (same values) instead of encoding again
    again = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu", cache_dir=tmp_path)
    again.set_gallery(gallery)
    stamp = path.stat().st_mtime_ns
    assert torch.equal(again.gallery_embeddings(), first)
    assert path.stat().st_mtime_ns == stamp
    # flip bytes in the payload: the hash check rejects it and the cache is rebuilt
    data = bytearray(path.read_bytes())
    data[-100:-50] = bytes(50)
    path.write_bytes(bytes(data))
    third = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu", cache_dir=tmp_path)
    third.set_gallery(gallery)
    told: list[str] = []
    with caplog.at_level("WARNING", logger="model_utils"):
        assert torch.equal(third.gallery_embeddings(progress=lambda _f, message: told.append(message)), first)
    assert path.stat().st_mtime_ns != stamp
    why = "does not match its checksum (the file was damaged)"  # the rebuild says why, in the log and the progress
    assert any(why in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    assert why in told[0]
    # a truncated file too
    path.write_bytes(path.read_bytes()[:1000])
    fourth = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu", cache_dir=tmp_path)
    fourth.set_gallery(gallery)
    caplog.clear()
    with caplog.at_level("WARNING", logger="model_utils"):
        assert torch.equal(fourth.gallery_embeddings(), first)
    assert "cannot be read" in caplog.text


def test_an_unwritable_gallery_cache_is_reported_once_and_the_result_stands(tiny_clip, tmp_path):
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("not a folder")  # mkdir below it fails, even as root
    model = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu", cache_dir=blocked / "sub")
    gallery = Gallery(np.array([[10.0, 20.0], [-30.0, 40.0], [50.0, -60.0]]), name="t3")
    model.set_gallery(gallery)
    messages: list[str] = []
    emb = model.gallery_embeddings(progress=lambda _f, m: messages.append(m))
    np.testing.assert_allclose(emb.numpy(), model.encode_locations(gallery.latlon, normalize=True), atol=1e-6)
    warnings = [m for m in messages if m.startswith("Could not save the gallery embeddings")]
    assert len(warnings) == 1 and "encodes the 3 points again" in warnings[0] and "GEOCLIP_CACHE_DIR" in warnings[0]


def test_custom_gallery_predictions_come_from_it(model, tmp_path):
    rng = np.random.default_rng(5)
    latlon = np.column_stack([rng.uniform(40, 50, 500), rng.uniform(0, 10, 500)])
    custom = GeoCLIP.from_pretrained(clip_model=str(model.clip_model), device="cpu")
    custom.set_gallery(latlon)
    pred = custom.predict(write_photos(tmp_path, n=1), top_k=4)[0]
    assert pred.gallery_probs.shape == (500,)
    assert np.all((pred.lat >= 40) & (pred.lat <= 50) & (pred.lon >= 0) & (pred.lon <= 10))


@pytest.mark.parametrize(
    "bad, rows",
    [
        ([[91.0, 0.0], [0.0, 0.0]], "0"),
        ([[0.0, 0.0], [0.0, -181.0]], "1"),
        ([[0.0, 0.0], [float("nan"), 1.0], [1.0, 1.0]], "1"),
    ],
)
def test_encode_locations_rejects_bad_rows(model, bad, rows):
    with pytest.raises(ValueError, match=rows):
        model.encode_locations(np.array(bad))


def test_encode_locations_rejects_wrong_shape(model):
    with pytest.raises(ValueError, match="shape"):
        model.encode_locations(np.zeros((4, 3)))


def test_missing_backbone_fails_fast_and_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = GeoCLIP.from_pretrained(clip_model="openai/clip-vit-large-patch14", device="cpu")
    assert model.encode_locations([[48.85, 2.35]]).shape == (1, 512)  # location side needs no backbone
    attempts = forbid_network(monkeypatch)  # "fast": no socket, no hub probe, no download is even tried
    with pytest.raises(BackboneUnavailable) as err:
        model.predict(write_photos(tmp_path, n=1))
    assert attempts == []
    message = str(err.value)
    assert "HF_HUB_OFFLINE is set" in message  # refused from the local cache check alone
    assert "GEOCLIP_CLIP_MODEL" in message and "clip-vit-large-patch14" in message and "folder" in message
    with pytest.raises(BackboneUnavailable, match="does not exist"):
        GeoCLIP.from_pretrained(clip_model=str(tmp_path / "no-such-folder"), device="cpu").load_backbone()


def test_wrong_projection_dim_is_rejected(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(projection_dim=512,
                        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                           num_attention_heads=2, patch_size=32, image_size=224),
                        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, vocab_size=100))
    CLIPModel(config).save_pretrained(tmp_path / "clip512")
    from transformers import CLIPImageProcessor

    CLIPImageProcessor().save_pretrained(tmp_path / "clip512")
    model = GeoCLIP.from_pretrained(clip_model=str(tmp_path / "clip512"), device="cpu")
    with pytest.raises(BackboneUnavailable, match="ViT-L/14-compatible"):
        model.load_backbone()


def test_weights_errors_name_the_file_and_expected_keys(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        GeoCLIP.from_pretrained(weights=tmp_path / "missing")
    folder = tmp_path / "w"
    folder.mkdir()
    with pytest.raises(WeightsError, match="location_encoder_weights.pth"):
        GeoCLIP.from_pretrained(weights=folder)
    torch.save({"LocEnc0.capsule.0.b": torch.zeros(256, 3)}, folder / "location_encoder_weights.pth")
    torch.save({"0.weight": torch.zeros(768, 768)}, folder / "image_encoder_mlp_weights.pth")
    torch.save(torch.tensor(1.0), folder / "logit_scale_weights.pth")
    with pytest.raises(WeightsError) as err:
        GeoCLIP.from_pretrained(weights=folder)
    msg = str(err.value)
    assert "location_encoder_weights.pth" in msg and "missing keys" in msg and "(256, 2)" in msg
    (folder / "location_encoder_weights.pth").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="Cannot read"):
        GeoCLIP.from_pretrained(weights=folder)


def test_weights_refuse_pickled_code(tmp_path):
    import pickle

    folder = tmp_path / "w"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name in ("location_encoder_weights.pth", "image_encoder_mlp_weights.pth", "logit_scale_weights.pth"):
        with open(folder / name, "wb") as fh:
            torch.save({"x": Evil()}, fh, pickle_module=pickle)
    with pytest.raises(WeightsError, match="Cannot read"):
        GeoCLIP.from_pretrained(weights=folder)
