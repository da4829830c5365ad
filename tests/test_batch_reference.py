"""Reference collections in the batch job, without Ray: embed-photos' workers write shards that the driver joins
into the same index a local build writes (fitted), an earlier index is reused, a worker with another backbone
refuses; geolocate --references fuses each photo as ReferenceGeolocator does, writes the matches beside the
shard and adds the references' mass to the density; the CLI takes both."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from model_utils.batch import reference_job as rj
from model_utils.batch import reference_matches as rm
from model_utils.batch.plan import Plan, shard_path
from model_utils.reference import CollectionError, ReferenceGeolocator, build_collection
from model_utils.reference.index import load_collection, model_key


@pytest.fixture()
def model_args(tiny_clip) -> dict:
    return {"clip_model": str(tiny_clip), "weights": None, "device": "cpu", "precision": "fp32", "cache_dir": None}


@pytest.fixture()
def archive(scene_photos, tmp_path):
    """The scenes' reference variants, plus a photo without GPS, a broken file and a copy of the first photo."""
    from tools.samples.photos import noisy_rgb

    folder = tmp_path / "archive"
    shutil.copytree(scene_photos[0].path.parent, folder)
    noisy_rgb(64, 48).save(folder / "zz_no_gps.jpg")
    (folder / "zz_broken.jpg").write_bytes(b"no jpeg")
    shutil.copy(folder / "scene000_00.jpg", folder / "zz_copy.jpg")
    return folder


def embed_job(reference_model, model_args, archive, out, reuse: str = ""):
    """What the driver and two workers do for ``embed-photos --photos archive --shard-size 32``."""
    found = rj.reference_candidates(str(archive))
    items = [f"{c.path}\t{c.lat!r}\t{c.lon!r}" for c in found]
    key = model_key(reference_model)
    plan = Plan.make("embed-photos", items, 32, {"model": key, "reuse": reuse})
    out.mkdir()
    worker = rj.EmbedPhotoShards(str(out), model_args, key, reuse=reuse, batch_size=8)
    calls = []
    embed = worker.model.embed_pixels
    worker.model.embed_pixels = lambda pixels: calls.append(len(pixels)) or embed(pixels)
    counts = [worker.run_shard(s, items[slice(*plan.bounds(s))]) for s in range(plan.n_shards)]
    return plan, key, counts, sum(calls)


def test_embed_photos_shards_join_into_the_local_builds_index_with_its_fit(reference_model, model_args, archive,
                                                                           tmp_path):
    out = tmp_path / "job"
    plan, key, counts, embedded = embed_job(reference_model, model_args, archive, out)
    assert plan.n_shards == 2 and embedded == 61  # 60 scene photos and the copy (shards do not know each other)
    assert sum(c[0] for c in counts) == 61 and sum(c[1] for c in counts) == 2
    assert "1 x no position" in counts[1][2] and "not an image" in counts[1][2]
    rows = pq.read_table(shard_path(out, 1)).to_pylist()
    errors = {r["photo"].rsplit("/", 1)[1]: r["error"] for r in rows if r["error"]}
    assert errors == {"zz_no_gps.jpg": rj.NO_POSITION, "zz_broken.jpg": errors["zz_broken.jpg"]}

    index, text = rj.join_shards(reference_model, plan, out, key, source=str(archive))
    joined = load_collection(index)
    local = build_collection(reference_model, archive, index=tmp_path / "local.safetensors").collection
    assert joined.paths == local.paths and len(joined) == 60  # the copy is left out, as locally
    np.testing.assert_allclose(joined.embeddings, local.embeddings, atol=1e-6)
    np.testing.assert_array_equal(joined.digests, local.digests)
    assert joined.model == local.model and joined.fit is not None
    assert joined.fit["params"] == local.fit["params"]
    assert text.startswith("Leave-one-out on 60") and (out / rj.FIT_FILE).read_text().startswith(text)


def test_an_earlier_index_is_reused_and_a_worker_with_another_backbone_refuses(reference_model, model_args, archive,
                                                                               tmp_path):
    first = build_collection(reference_model, archive, index=tmp_path / "old.safetensors", fit=False)
    _, _, _, embedded = embed_job(reference_model, model_args, archive, tmp_path / "job", reuse=str(first.index))
    assert embedded == 0  # every content is in the earlier index (the copy too); the broken file fails earlier
    with pytest.raises(CollectionError, match="differs from the driver's"):
        rj.EmbedPhotoShards(str(tmp_path), model_args, key="another model")


def test_geolocate_with_references_fuses_writes_matches_and_adds_their_mass_to_the_density(
        reference_model, model_args, scene_collection, scene_photos, tmp_path):
    from model_utils.batch.plan import density_path, regions_path
    from model_utils.batch.workers import GeolocateShards

    coll = scene_collection.collection
    refs, options, latlon = rm.references_for_job(reference_model, str(scene_collection.index))
    assert options["fusion"] == refs["params"] == coll.fit["params"]
    np.testing.assert_array_equal(latlon, coll.latlon)
    queries = [str(p.path) for p in scene_photos if p.query][:6]
    worker = GeolocateShards(str(tmp_path), model_args, [], top_k=3, batch_size=4, levels=(0.5,), cell_deg=2.0,
                             references=refs)
    assert worker.run_shard(0, queries) == (6, 0, "")
    expected = ReferenceGeolocator(reference_model, coll).predict(queries, top_k=3, batch_size=4)  # the same batches:
    # another batch size moves a similarity by ~1e-7 on some BLAS, and the steep weight turns that into ~1e-5
    rows = pq.read_table(shard_path(tmp_path, 0)).to_pylist()
    for pred in expected:
        got = sorted((r for r in rows if r["photo"] == pred.source), key=lambda r: r["rank"])
        np.testing.assert_allclose([(r["lat"], r["lon"]) for r in got], np.column_stack([pred.lat, pred.lon]))
        np.testing.assert_allclose([r["prob"] for r in got], pred.prob, atol=1e-6)
    matches = pq.read_table(rm.matches_path(tmp_path, 0)).to_pylist()
    assert len(matches) == 6 * 10 and matches[0]["reference"] == expected[0].matches[0].path
    assert matches[0]["similarity"] == pytest.approx(expected[0].matches[0].similarity)
    density = np.load(density_path(tmp_path, 0))
    n_gallery = len(reference_model.gallery)
    assert density.shape == (n_gallery + len(coll),) and density.sum() == pytest.approx(6, abs=1e-4)
    assert density[n_gallery:].sum() == pytest.approx(sum(p.weight for p in expected), abs=1e-4)
    assert len(pq.read_table(regions_path(tmp_path, 0))) == 6


def test_a_collection_of_another_model_is_refused_for_geolocate(reference_model, tmp_path, scene_collection):
    from model_utils import GeoCLIP
    from tools.samples.clip_factory import build_clip

    other = GeoCLIP.from_pretrained(clip_model=str(build_clip(tmp_path / "clip2", seed=2, tokenizer=False)),
                                    device="cpu")
    with pytest.raises(CollectionError, match="embedded with another CLIP backbone"):
        rm.references_for_job(other, str(scene_collection.index))


def test_the_cli_takes_embed_photos_and_geolocate_references():
    from model_utils.batch.__main__ import parser

    args = parser().parse_args(["embed-photos", "--photos", "refs/", "--out", "o", "--reuse", "old.safetensors"])
    assert (args.command, args.photos, args.reuse, args.batch_size) == ("embed-photos", "refs/", "old.safetensors", 8)
    args = parser().parse_args(["geolocate", "--photos", "p", "--out", "o", "--references", "r.safetensors"])
    assert args.references == "r.safetensors"
    assert parser().parse_args(["geolocate", "--photos", "p", "--out", "o"]).references is None
