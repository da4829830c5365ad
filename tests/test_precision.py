"""bf16 autocast for the CLIP backbone on the CPU: it must agree with fp32 (the fidelity tests against the
official code stay fp32). Measured on the tiny random backbone here; the ViT-L/14-shaped one is measured by
``make bench`` (section precision)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_utils import GeoCLIP
from tools.samples.photos import write_photos


@pytest.fixture(scope="module")
def pair(tiny_clip):
    fp32 = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu", precision="fp32")
    bf16 = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu", precision="bf16")
    return fp32, bf16


def test_bf16_is_autocast_with_fp32_weights_and_an_fp32_head(pair):
    fp32, bf16 = pair
    assert bf16.precision.autocast is torch.bfloat16 and bf16.dtype is torch.float32
    bf16.load_backbone()
    assert next(bf16._vision.parameters()).dtype is torch.float32  # autocast keeps the weights
    assert next(bf16.location_encoder.parameters()).dtype is torch.float32
    assert bf16.gallery_embeddings().dtype is torch.float32  # the gallery is precision-independent


def test_bf16_embeddings_and_top5_agree_with_fp32(pair, tmp_path):
    fp32, bf16 = pair
    photos = write_photos(tmp_path, n=12)
    a = fp32.predict(photos, top_k=5)
    b = bf16.predict(photos, top_k=5)
    from PIL import Image

    pixels = fp32.processor(images=[Image.open(p).convert("RGB") for p in photos], return_tensors="pt")["pixel_values"]
    ea, eb = fp32.embed_pixels(pixels).numpy(), bf16.embed_pixels(pixels).numpy()
    cosine = (ea * eb).sum(axis=1) / np.linalg.norm(ea, axis=1) / np.linalg.norm(eb, axis=1)
    assert cosine.min() >= 0.9999, cosine
    compared = 0
    for x, y in zip(a, b):
        probs = np.sort(x.gallery_probs)[::-1]
        if np.all(np.diff(probs[:6]) < -1e-9):  # fp32's top-5 (and the 6th) are untied
            assert list(x.indices) == list(y.indices)
            compared += 1
        assert np.abs(x.gallery_probs - y.gallery_probs).max() < 1e-3
    assert compared >= 2  # the tiny random model ties often: the untied ones must agree exactly


def test_text_queries_run_under_bf16_too(pair):
    fp32, bf16 = pair
    queries = ["a beach", "the pyramids"]
    ta, tb = fp32.embed_texts(queries).numpy(), bf16.embed_texts(queries).numpy()
    assert ((ta * tb).sum(axis=1)).min() >= 0.999


def test_the_setup_precision_reaches_every_run_and_the_log_says_it_once(geoclip_provider, clip_env, tmp_path):
    import processing

    from geoclip_qgis import settings
    from model_utils.model.geoclip import release_shared_model
    from tests.embedding_helpers import LogFeedback

    release_shared_model()
    settings.put("precision", "bf16")  # as the Setup tab saves it; the run's own parameter is left at auto
    try:
        logs = []
        for i in range(2):
            feedback = LogFeedback()
            processing.run("geoclip:geolocatetext", {"QUERIES": "a beach", "CELL_SIZE": 10.0,
                                                     "OUTPUT_FOLDER": str(tmp_path / str(i))}, feedback=feedback)
            logs.append(feedback.text)
        assert "Backbone in bf16 as asked, though this CPU has no native bf16" in logs[0]  # the fixture's CPU
        assert "Backbone in" not in logs[1]  # the same loaded model: said once
        with pytest.raises(Exception, match="fp16 is for GPUs"):
            processing.run("geoclip:geolocatetext", {"QUERIES": "a beach", "PRECISION": 2,
                                                     "OUTPUT_FOLDER": str(tmp_path / "fp16")})
    finally:
        settings.put("precision", "")
        release_shared_model()
