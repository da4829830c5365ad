"""Building a reference collection: from a folder (EXIF GPS), a CSV or Parquet table, a list; incremental
(only new content is embedded, renamed photos are not, changed ones are); the index keyed by model; photos
without a position listed, bad files named, duplicates found; the index file itself (atomic, damaged)."""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest

from model_utils.reference import CollectionError, build_collection, load_collection
from model_utils.reference.index import read_index
from tools.samples.photos import noisy_rgb, write_gps_photo

PLACES = [(48.8566, 2.3522), (-33.8688, 151.2093), (35.6762, 139.6503), (40.7128, -74.0060)]


def gps_folder(folder, n: int = 4, seed: int = 0):
    """``n`` distinct photos with EXIF GPS (PLACES in turn)."""
    return [write_gps_photo(folder / f"ref_{seed}_{i:02d}.jpg", *PLACES[i % len(PLACES)], size=(96, 72),
                            seed=seed * 100 + i) for i in range(n)]


def test_a_folder_builds_from_exif_gps_and_a_second_build_reads_and_embeds_nothing(reference_model, tmp_path):
    photos = gps_folder(tmp_path / "refs")
    index = tmp_path / "index.safetensors"
    first = build_collection(reference_model, tmp_path / "refs", index=index, fit=False)
    assert (first.embedded, first.reused, first.hashed) == (4, 0, 4)
    coll = first.collection
    assert coll.paths == tuple(str(p) for p in photos)
    np.testing.assert_allclose(coll.latlon, PLACES, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(coll.embeddings, axis=1), 1.0, atol=1e-5)
    # the embeddings are the prediction pipeline's own
    expected = reference_model.embed_pixels(reference_model.processor(images=[_rgb(p) for p in photos],
                                                            return_tensors="pt")["pixel_values"]).numpy()
    np.testing.assert_allclose(coll.embeddings, expected, atol=1e-5)
    again = build_collection(reference_model, tmp_path / "refs", index=index, fit=False)
    assert (again.embedded, again.reused, again.hashed) == (0, 4, 0)  # not even read: size and mtime unchanged
    np.testing.assert_array_equal(again.collection.embeddings, coll.embeddings)
    loaded = load_collection(index)
    assert loaded.paths == coll.paths and loaded.model == coll.model
    np.testing.assert_array_equal(loaded.digests, coll.digests)


def _rgb(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def test_adding_photos_embeds_only_the_new_ones_renamed_photos_none_and_changed_ones_again(reference_model, tmp_path):
    folder = tmp_path / "refs"
    gps_folder(folder, n=6)
    index = tmp_path / "index.safetensors"
    build_collection(reference_model, folder, index=index, fit=False)
    gps_folder(folder, n=2, seed=7)  # two new photos
    os.rename(folder / "ref_0_00.jpg", folder / "renamed.jpg")  # same content, new name: hashed, not embedded
    write_gps_photo(folder / "ref_0_01.jpg", *PLACES[1], size=(96, 72), seed=999)  # new content under an old name
    report = build_collection(reference_model, folder, index=index, fit=False)
    assert (report.embedded, report.reused, report.hashed) == (3, 5, 4)
    assert len(report.collection) == 8
    assert str(folder / "renamed.jpg") in report.collection.paths


def test_tables_give_positions_csv_and_parquet_with_exif_as_fallback_and_relative_paths(reference_model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        noisy_rgb(96, 72, seed=i).save(folder / f"p{i}.jpg")  # no EXIF at all
    gps = write_gps_photo(folder / "gps.jpg", *PLACES[3], size=(96, 72))
    table = tmp_path / "refs.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Photo", "Latitude", "Longitude"])
        writer.writerows([["photos/p0.jpg", 10.5, 20.25], [str(folder / "p1.jpg"), -5, 100],
                          ["photos/p2.jpg", "", ""], ["photos/gps.jpg", "", ""]])
    report = build_collection(reference_model, table, index=tmp_path / "a.safetensors", fit=False)
    assert report.collection.paths == (str(folder / "p0.jpg"), str(folder / "p1.jpg"), str(gps))
    np.testing.assert_allclose(report.collection.latlon, [(10.5, 20.25), (-5, 100), PLACES[3]], atol=1e-6)
    assert report.without_position == [str(folder / "p2.jpg")]
    assert "table" in report.source and "1 without a position" in report.text()

    parquet = tmp_path / "refs.parquet"
    pq.write_table(pa.table({"path": ["photos/p0.jpg", "photos/p1.jpg"], "lat": [10.5, -5.0],
                             "lon": [20.25, 100.0]}), parquet)
    again = build_collection(reference_model, parquet, index=tmp_path / "a.safetensors", fit=False)
    assert (again.embedded, again.reused) == (0, 2)  # the same content, another source: from the index
    np.testing.assert_array_equal(again.collection.embeddings, report.collection.embeddings[:2])


def test_a_list_of_path_lat_lon_as_a_layer_front_hands_it_in(reference_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for i in range(3):
        noisy_rgb(96, 72, seed=10 + i).save(folder / f"p{i}.jpg")
        paths.append(folder / f"p{i}.jpg")
    items = [(paths[0], 1.0, 2.0), (str(paths[1]), None, None), (str(paths[2]), float("nan"), 3.0)]
    report = build_collection(reference_model, items, fit=False)
    assert report.collection.paths == (str(paths[0]),)
    assert report.without_position == [str(paths[1]), str(paths[2])]
    assert report.index.parent.name == "references"  # default: under the embedding cache
    assert report.index.name.startswith("photos-")
    with pytest.raises(CollectionError, match=r"#2 is 42: give \(path, lat, lon\)"):
        build_collection(reference_model, [items[0], 42], fit=False)


def test_bad_files_are_named_duplicates_listed_and_the_rest_goes_on(reference_model, tmp_path):
    folder = tmp_path / "refs"
    gps_folder(folder, n=3)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "empty.png").write_bytes(b"")
    shutil.copy(folder / "ref_0_00.jpg", folder / "zz_copy.jpg")
    noisy_rgb(96, 72, seed=5).save(folder / "no_gps.jpg")
    table = tmp_path / "t.csv"
    table.write_text(f"path,lat,lon\n{folder / 'gone.jpg'},1,2\n{folder / 'broken.jpg'},3,4\n"
                     f"{folder / 'ref_0_01.jpg'},5,6\n")
    report = build_collection(reference_model, folder, index=tmp_path / "i.safetensors", fit=False)
    assert len(report.collection) == 3
    failed = dict(report.failed)
    assert "is not an image" in failed[str(folder / "broken.jpg")]
    assert "is empty (0 bytes)" in failed[str(folder / "empty.png")]
    assert report.without_position == [str(folder / "no_gps.jpg")]
    assert report.duplicates == [(str(folder / "zz_copy.jpg"), str(folder / "ref_0_00.jpg"))]
    text = report.text()
    assert "broken.jpg" in text and "zz_copy.jpg has the same content as" in text

    from_table = build_collection(reference_model, table, index=tmp_path / "t.safetensors", fit=False)
    failed = dict(from_table.failed)
    assert "gone.jpg' cannot be read (No such file or directory)" in failed[str(folder / "gone.jpg")]
    assert "is not an image" in failed[str(folder / "broken.jpg")]  # found when decoding for the backbone
    assert from_table.collection.paths == (str(folder / "ref_0_01.jpg"),)


def test_nothing_usable_and_bad_tables_are_clear_errors(reference_model, tmp_path):
    folder = tmp_path / "none"
    folder.mkdir()
    noisy_rgb(96, 72).save(folder / "a.jpg")
    with pytest.raises(CollectionError, match="1 have no position"):
        build_collection(reference_model, folder, index=tmp_path / "i.safetensors")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,lat,lon\na.jpg,1,2\n")
    with pytest.raises(CollectionError, match="has no photo path column .* it has name, lat, lon"):
        build_collection(reference_model, bad)
    half = tmp_path / "half.csv"
    half.write_text("path,lat\na.jpg,1\n")
    with pytest.raises(CollectionError, match="only one of the coordinate columns"):
        build_collection(reference_model, half)


def test_the_index_belongs_to_its_model_and_a_damaged_one_is_rebuilt(reference_model, tmp_path):
    from model_utils import GeoCLIP
    from tools.samples.clip_factory import build_clip

    folder = tmp_path / "refs"
    gps_folder(folder, n=3)
    index = tmp_path / "i.safetensors"
    first = build_collection(reference_model, folder, index=index, fit=False)
    other = GeoCLIP.from_pretrained(clip_model=str(build_clip(tmp_path / "clip1", seed=1, tokenizer=False)),
                                    device="cpu")
    report = build_collection(other, folder, index=index, fit=False)
    assert report.embedded == 3 and "another CLIP backbone" in report.note
    assert report.collection.model != first.collection.model
    assert read_index(index, first.collection.model)[0] is None

    index.write_bytes(index.read_bytes()[:200])  # cut short
    again = build_collection(reference_model, folder, index=index, fit=False)
    assert again.embedded == 3 and "cannot be read as a reference index" in again.note
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    with pytest.raises(CollectionError, match="no index at"):
        load_collection(tmp_path / "missing.safetensors")


def test_progress_runs_from_checking_to_embedding_and_cancel_stops_between_batches(reference_model, tmp_path):
    from model_utils.errors import Canceled

    gps_folder(tmp_path / "refs", n=5)
    seen: list[tuple[float, str]] = []
    build_collection(reference_model, tmp_path / "refs", index=tmp_path / "i.safetensors", fit=False, batch_size=2,
                     progress=lambda f, msg: seen.append((f, msg)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] == pytest.approx(1.0)
    assert seen[0][1].startswith("Checked") and seen[-1][1] == "5/5 photos done: 5 embedded"
    with pytest.raises(Canceled):
        build_collection(reference_model, tmp_path / "refs", index=tmp_path / "j.safetensors", fit=False,
                         is_canceled=lambda: True)
