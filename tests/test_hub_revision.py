"""The backbone download is pinned to one commit: the default backbone to ``DEFAULT_CLIP_REVISION``, a user's repo
id to its ``@revision`` (else the commit ``main`` names when it is downloaded). A hub repo that moves on can never
swap the weights: the cache is looked up by that commit, and the run says which commit it loaded. Against the
local hub stand-in (``tests/hub_standin.py``), which serves each repo as commits; loopback only."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from model_utils.constants import DEFAULT_CLIP, DEFAULT_CLIP_REVISION
from tests.hub_standin import HubStandIn

NEWER = "fedcba9876543210fedcba9876543210fedcba98"  # a later commit pushed to the same hub repo
USER_REPO = "geoclip-test/clip"
USER_COMMIT = "00112233445566778899aabbccddeeff00112233"


@pytest.fixture(scope="module")
def other_clip(tmp_path_factory):
    """A second tiny CLIP with other weights: what a moved hub repo would serve."""
    from tools.samples.clip_factory import build_clip

    return build_clip(tmp_path_factory.mktemp("other-clip"), size="tiny", seed=7)


@pytest.fixture()
def moved_hub(online_hub, tiny_clip, other_clip, monkeypatch):
    """Both repos at their first commit (the tiny CLIP), then a newer commit with other weights as ``main``."""
    monkeypatch.delenv("GEOCLIP_CLIP_MODEL", raising=False)
    server = HubStandIn({DEFAULT_CLIP: tiny_clip, USER_REPO: tiny_clip},
                        commits={DEFAULT_CLIP: DEFAULT_CLIP_REVISION, USER_REPO: USER_COMMIT})
    for repo in (DEFAULT_CLIP, USER_REPO):
        server.push(repo, other_clip, NEWER)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()


def _embedding(clip_model: str | None) -> tuple[np.ndarray, str]:
    import torch

    from model_utils import GeoCLIP

    model = GeoCLIP.from_pretrained(clip_model=clip_model, device="cpu")
    model.load_backbone()
    pixels = model.processor(images=[Image.new("RGB", (64, 48), (120, 160, 200))], return_tensors="pt")
    with torch.inference_mode():
        return model.embed_pixels(pixels["pixel_values"]).numpy(), model.backbone_origin


def _commits_fetched(hub: HubStandIn) -> set[str]:
    """The commits whose files were fetched (``/<repo>/resolve/<commit>/...`` and the CDN's ``.../<commit>/...``)."""
    return {part for r in hub.requests for part in r.path.split("/") if len(part) == 40}


def test_the_default_backbone_is_its_pinned_commit_while_main_has_moved(moved_hub, online_hub, tiny_clip, caplog):
    caplog.set_level(logging.INFO, logger="model_utils")
    got, origin = _embedding(None)
    want, _ = _embedding(str(tiny_clip))
    np.testing.assert_allclose(got, want, atol=1e-6)  # the pinned weights, not main's newer ones
    assert _commits_fetched(moved_hub) == {DEFAULT_CLIP_REVISION}
    assert {r.path for r in moved_hub.requests if r.path.startswith("/api/models/")} == {
        f"/api/models/{DEFAULT_CLIP}/revision/{DEFAULT_CLIP_REVISION}"}
    snapshots = online_hub / ("models--" + DEFAULT_CLIP.replace("/", "--")) / "snapshots"
    assert [p.name for p in snapshots.iterdir()] == [DEFAULT_CLIP_REVISION]  # the cache keeps it under its commit
    # said in the run: the repo and its commit (the Python API's logger; QGIS's run log gets the same line)
    assert origin.startswith(f"CLIP backbone {DEFAULT_CLIP} at revision {DEFAULT_CLIP_REVISION}, from the Hugging")
    assert any(origin in r.getMessage() for r in caplog.records)

    moved_hub.stop()  # a second run: from the cache of that commit, the hub gone
    again, _ = _embedding(None)
    np.testing.assert_allclose(again, want, atol=1e-6)


def test_a_user_repo_at_its_revision_and_at_main(moved_hub, online_hub, tiny_clip, other_clip):
    at_commit, origin = _embedding(f"{USER_REPO}@{USER_COMMIT}")
    np.testing.assert_allclose(at_commit, _embedding(str(tiny_clip))[0], atol=1e-6)
    assert f"{USER_REPO} at revision {USER_COMMIT}," in origin

    at_main, origin = _embedding(USER_REPO)  # no revision: the commit main names now, said as such
    np.testing.assert_allclose(at_main, _embedding(str(other_clip))[0], atol=1e-6)
    assert f"{USER_REPO} at revision {NEWER} (main)," in origin
    repo_dir = online_hub / ("models--" + USER_REPO.replace("/", "--"))
    assert (repo_dir / "refs" / "main").read_text() == NEWER  # the branch's ref, so the cache finds it offline
    assert sorted(p.name for p in (repo_dir / "snapshots").iterdir()) == sorted([USER_COMMIT, NEWER])


def test_an_unknown_revision_fails_with_the_revision_named(moved_hub, online_hub):
    from model_utils.errors import BackboneUnavailable

    with pytest.raises(BackboneUnavailable) as caught:
        _embedding(f"{USER_REPO}@v9.9")
    assert f"'{USER_REPO}' at revision v9.9 failed" in str(caught.value)
