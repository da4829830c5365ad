"""What a batch job reads and how it guards its output folder (no Ray needed): photo sources (folder,
glob, Parquet manifest), point tables, the plan that makes --resume safe, the Pillow GeoTIFF."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model_utils.batch.plan import Plan, PlanError, prepare_output, shard_path
from model_utils.batch.sources import SourceError, list_photos, read_points


@pytest.fixture()
def archive(tmp_path):
    from tools.samples.photos import noisy_rgb

    for rel in ("a/one.jpg", "a/two.JPG", "b/three.png", "b/.hidden.jpg", "notes.txt"):
        path = tmp_path / "archive" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in (".jpg", ".png"):
            noisy_rgb(32, 24, seed=len(rel)).save(path)
        else:
            path.write_text("not a photo")
    return tmp_path / "archive"


def test_a_folder_a_glob_and_a_manifest_give_the_same_sorted_photo_list(archive, tmp_path):
    from_folder = list_photos(str(archive))
    assert [p.rsplit("/", 1)[-1] for p in from_folder] == ["one.jpg", "two.JPG", "three.png"]
    assert list_photos(str(archive / "**" / "*")) == sorted(from_folder)
    manifest = archive / "manifest.parquet"  # relative paths are read from the manifest's folder
    pq.write_table(pa.table({"path": ["b/three.png", "a/one.jpg", str(archive / "a" / "two.JPG")]}), manifest)
    assert list_photos(str(manifest)) == sorted(from_folder)


def test_bad_sources_say_what_is_wrong(archive, tmp_path):
    with pytest.raises(SourceError, match="neither a folder, a glob pattern nor a .parquet manifest"):
        list_photos(str(tmp_path / "missing"))
    with pytest.raises(SourceError, match="No photos match"):
        list_photos(str(archive / "*.tif"))
    pq.write_table(pa.table({"file": ["a/one.jpg"]}), tmp_path / "m.parquet")
    with pytest.raises(SourceError, match=r"no 'path' column \(it has: file\)"):
        list_photos(str(tmp_path / "m.parquet"))
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(SourceError, match="cannot be read as Parquet"):
        list_photos(str(tmp_path / "broken.parquet"))


def test_point_tables_keep_one_row_per_input_row(tmp_path):
    pq.write_table(pa.table({"name": ["x", "y", "z"], "LAT": [1.0, 95.0, None], "Lng": [2.0, 3.0, 4.0]}),
                   tmp_path / "p.parquet")
    ids, latlon = read_points(str(tmp_path / "p.parquet"))
    assert ids.tolist() == [0, 1, 2]
    assert latlon[0].tolist() == [1.0, 2.0] and latlon[1].tolist() == [95.0, 3.0] and np.isnan(latlon[2, 0])
    (tmp_path / "q.csv").write_text("name,x\na,1\n")
    with pytest.raises(SourceError, match="no lat column"):
        read_points(str(tmp_path / "q.csv"))


def test_resume_needs_the_same_job_and_a_new_job_needs_an_empty_folder(tmp_path):
    out = tmp_path / "out"
    plan = Plan.make("geolocate", ["a.jpg", "b.jpg", "c.jpg"], 2, {"top_k": 5})
    assert prepare_output(out, plan, resume=False) == [0, 1]
    assert json.loads((out / "plan.json").read_text())["n_items"] == 3
    shard_path(out, 0).write_bytes(b"done")
    (out / ".part-00001.123.part.parquet").write_bytes(b"half")  # a writer killed mid-shard
    with pytest.raises(PlanError, match="Pass --resume"):
        prepare_output(out, plan, resume=False)
    assert prepare_output(out, plan, resume=True) == [1]
    assert not list(out.glob(".*")), "the killed writer's temporary is cleared"
    other = Plan.make("geolocate", ["a.jpg", "b.jpg"], 2, {"top_k": 5})
    with pytest.raises(PlanError, match=r"the input changed \(3 items then, 2 now"):
        prepare_output(out, other, resume=True)
    with pytest.raises(PlanError, match="options changed: top_k 5 -> 3"):
        prepare_output(out, Plan.make("geolocate", ["a.jpg", "b.jpg", "c.jpg"], 2, {"top_k": 3}), resume=True)


def test_the_pillow_geotiff_reads_back_in_gdal_with_its_georeferencing(tmp_path):
    from osgeo import gdal, osr

    from model_utils.maps.geotiff import write_wgs84_geotiff

    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_wgs84_geotiff(values, (-10.0, 0.5, 0.0, 20.0, 0.0, -0.5), tmp_path / "d.tif", nodata=-1.0,
                               description="expected photos per cell")
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    np.testing.assert_array_equal(band.ReadAsArray(), values)
    assert ds.GetGeoTransform() == (-10.0, 0.5, 0.0, 20.0, 0.0, -0.5)
    assert band.GetNoDataValue() == -1.0
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    srs.AutoIdentifyEPSG()
    assert srs.GetAuthorityCode(None) == "4326"
    ds = None
    with pytest.raises(ValueError, match="north-up"):
        write_wgs84_geotiff(values, (0, 1, 0, 0, 0, 1), tmp_path / "e.tif")
    assert not (tmp_path / "e.tif").exists()
