"""The Ray batch job on a real two-node Ray cluster on 127.0.0.1: same answers as GeoCLIP.predict,
valid GeoParquet, the archive density raster, and faults (a worker, a node, the driver lost).

Drivers run as ``python -m model_utils.batch`` subprocesses, as a user runs them. In the fault tests a
hold file (GEOCLIP_BATCH_HOLD_FILE) stops new shards from starting once a few are written, until the test
deletes it, so every kill lands while the job runs, however fast or slow the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.batch_jobs import REPO, cancel_once_written, hold_after, ray_processes, read_rows, run_job, wait_for_shards
from tests.ray_cluster import RayTestCluster

TOP_K = 5
N_PHOTOS = 40  # 38 decodable (four with GPS, one HEIC, one HEIF), one broken and one empty file
SHARD = 5
N_SHARDS = -(-N_PHOTOS // SHARD)


@pytest.fixture(scope="module")
def ray_env(geoclip_cache_dir) -> dict:
    """The environment of the cluster and of every driver: offline, this session's caches, a cluster token."""
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PROJ_DATA="/usr/share/proj",
                GEOCLIP_CACHE_DIR=str(geoclip_cache_dir), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
                RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO),
                # a driver hands out shards once its whole pool is up, not as soon as one actor is: which
                # worker does which shard no longer depends on which one imported torch first
                RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S="120",
                # the head's GCS checks each node every second and calls it dead after 3 failed checks (Ray's
                # defaults, 3 s x 5, left a killed node's shards waiting ~15 s for their restarted worker);
                # a check still has Ray's 10 s to answer, so a busy machine does not lose a live node
                RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3",
                # as in an activated environment: a job's entrypoint 'python' is this interpreter
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture(scope="module")
def cluster(ray_env, request):
    """A head (4 logical CPUs, the dashboard) and one worker node (2 CPUs): with 2-CPU workers, the head
    keeps room for one worker and for a restarted one when the other node is lost. It boots in a thread
    while the module's reference answers are computed: each mostly waits on, or is, the other's core."""
    c = RayTestCluster(Path(tempfile.mkdtemp(prefix="gcr", dir="/tmp")), ray_env)
    booting = threading.Thread(target=c.boot, kwargs={"head_cpus": 4, "node_cpus": 2}, name="ray-boot", daemon=True)
    try:
        booting.start()
        request.getfixturevalue("reference")
        booting.join()
        c.raise_boot_error()
        yield c
    finally:
        booting.join()
        c.stop()
        shutil.rmtree(c.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[str]:
    from tools.samples.photos import noisy_rgb, write_gps_photo

    folder = tmp_path_factory.mktemp("archive")
    for i in range(N_PHOTOS - 6):  # in sub-folders: a folder source is searched recursively
        path = folder / f"day{i % 3}" / f"img_{i:03d}.jpg"
        path.parent.mkdir(exist_ok=True)
        noisy_rgb(96, 72, seed=i).save(path, quality=85)
    write_gps_photo(folder / "gps_paris.jpg", 48.8566, 2.3522, size=(96, 72))
    write_gps_photo(folder / "gps_sydney.jpg", -33.87, 151.21, size=(96, 72))
    write_gps_photo(folder / "iphone_lisbon.HEIC", 38.7223, -9.1393, size=(96, 72), orientation=6)  # pillow-heif
    write_gps_photo(folder / "pixel_cape_town.heif", -33.9249, 18.4241, size=(96, 72), seed=5)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "empty.png").write_bytes(b"")
    (folder / "day0" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # reported, never a row
    from model_utils.batch.sources import list_photos

    paths = list_photos(str(folder))
    assert len(paths) == N_PHOTOS
    return paths


@pytest.fixture(scope="module")
def reference(tiny_clip, photos):
    """GeoCLIP.predict in one process: what the cluster must reproduce row for row."""
    from model_utils import GeoCLIP

    model = GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu", precision="fp32")
    preds = model.predict(photos, top_k=TOP_K, batch_size=8)
    density = np.zeros(len(model.gallery), dtype=np.float64)
    for p in preds:
        if p.ok:
            density += p.gallery_probs
    return model, {p.source: p for p in preds}, density


def geolocate_args(cluster, photos_dir: str, out: Path, tiny_clip, *extra: str) -> list[str]:
    return ["geolocate", "--photos", photos_dir, "--out", str(out), "--address", cluster.address,
            "--clip-model", str(tiny_clip), "--precision", "fp32", "--top-k", str(TOP_K), "--batch-size", "8",
            "--shard-size", str(SHARD), "--workers", "2", "--cpus-per-worker", "2", *extra]


def assert_same_as_predict(out: Path, reference, photos) -> None:
    """Every photo exactly once (top-k rows, or one error row), with predict's locations and probabilities."""
    _, preds, _ = reference
    files, rows = read_rows(out)
    assert len(files) == N_SHARDS
    assert not list(out.glob(".*")), "temporary files left behind"
    by_photo: dict[str, list] = {}
    for row in rows:
        by_photo.setdefault(row["photo"], []).append(row)
    assert sorted(by_photo) == sorted(photos)
    for photo, got in by_photo.items():
        pred = preds[photo]
        if not pred.ok:
            assert len(got) == 1 and got[0]["rank"] is None and got[0]["geometry"] is None
            assert got[0]["error"] == pred.error
            continue
        got.sort(key=lambda r: r["rank"])
        assert [r["rank"] for r in got] == list(range(1, TOP_K + 1)), photo
        np.testing.assert_array_equal([r["lat"] for r in got], pred.lat)
        np.testing.assert_array_equal([r["lon"] for r in got], pred.lon)
        np.testing.assert_allclose([r["prob"] for r in got], pred.prob, rtol=0, atol=1e-6)
        if pred.gps is not None:
            assert (got[0]["truth_lat"], got[0]["truth_lon"]) == pytest.approx(pred.gps)
            np.testing.assert_allclose([r["error_km"] for r in got], pred.errors_km, rtol=1e-9)
        else:
            assert got[0]["truth_lat"] is None and got[0]["error_km"] is None


# ------------------------------------------------------------------ answers and outputs
def test_cluster_job_gives_predicts_answers_as_geoparquet_with_a_density_raster(cluster, ray_env, tiny_clip,
                                                                                 photos, reference, tmp_path):
    from osgeo import gdal, osr

    out = tmp_path / "run"
    code, log = run_job(ray_env, *geolocate_args(cluster, str(Path(photos[0]).parent), out, tiny_clip))
    assert code == 0, log
    assert_same_as_predict(out, reference, photos)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["total"]) == (N_PHOTOS - 2, 2, N_PHOTOS)
    assert summary["worker_processes"] == 2  # N_SHARDS shards, 2 workers: each loaded the model once, not per shard
    assert f"{N_PHOTOS - 2} photos done, 2 skipped" in log and "photos/s" in log
    assert f"geoclip-batch: progress {N_PHOTOS}/{N_PHOTOS}" in log
    not_photos = "1 .mp4 file skipped: videos are not photos (clip.mp4)"
    assert summary["not_photos"] == [not_photos] and f"not photos: {not_photos}" in log
    rows = read_rows(out)[1]
    heic = {r["photo"].rsplit("/", 1)[-1]: (r["truth_lat"], r["truth_lon"]) for r in rows if r["rank"] == 1}
    assert heic["iphone_lisbon.HEIC"] == pytest.approx((38.7223, -9.1393), abs=1e-4)  # decoded on the workers
    assert heic["pixel_cape_town.heif"] == pytest.approx((-33.9249, 18.4241), abs=1e-4)

    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(out / "part-00000.parquet").metadata[b"geo"])
    column = meta["columns"]["geometry"]
    assert (meta["version"], meta["primary_column"], column["encoding"]) == ("1.1.0", "geometry", "WKB")
    assert column["geometry_types"] == ["Point"] and column["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    row = next(r for r in pq.read_table(out / "part-00000.parquet").to_pylist() if r["geometry"])
    from shapely import wkb

    point = wkb.loads(row["geometry"])
    assert (point.x, point.y) == (row["lon"], row["lat"])  # GeoParquet WKB is (x=lon, y=lat)
    assert column["bbox"][0] <= row["lon"] <= column["bbox"][2]

    # the archive density: where the photos come from, as many photos' worth of mass as were geolocated
    model, _, density = reference
    ds = gdal.Open(str(out / "density.tif"))
    values = ds.GetRasterBand(1).ReadAsArray().astype(np.float64)
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    srs.AutoIdentifyEPSG()
    assert srs.GetAuthorityCode(None) == "4326"
    assert ds.GetGeoTransform() == (-180.0, 0.25, 0.0, 90.0, 0.0, -0.25)
    assert values.sum() == pytest.approx(N_PHOTOS - 2, rel=1e-4)
    from model_utils.maps.grid import GridSpec
    from model_utils.maps.heatmap import probability_grid

    latlon = model.gallery.latlon
    expected = probability_grid(latlon[:, 0], latlon[:, 1], density, GridSpec.world(0.25), 50.0, land=True).values
    np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-7)  # on land by default
    ds = None


def test_an_output_folder_is_never_overwritten_and_resume_needs_the_same_job(cluster, ray_env, tiny_clip, photos,
                                                                             tmp_path):
    folder = str(Path(photos[0]).parent)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, log = run_job(ray_env, *geolocate_args(cluster, folder, out, tiny_clip))
    assert code == 2 and "is not empty and holds no batch job" in log
    assert (out / "notes.txt").read_text() == "mine"
    code, log = run_job(ray_env, "geolocate", "--photos", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert code == 2 and "neither a folder, a glob pattern nor a .parquet manifest" in log


# ------------------------------------------------------------------ faults
def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(cluster, ray_env, tiny_clip, photos,
                                                                      reference, tmp_path):
    import psutil

    out = tmp_path / "run"
    hold = hold_after(tmp_path, 2)
    proc = run_job(ray_env, *geolocate_args(cluster, str(Path(photos[0]).parent), out, tiny_clip), hold=hold,
                   wait=False)
    wait_for_shards(out, 2, proc)
    workers = cluster.actors_on()
    assert workers, "no Ray Data worker process found"
    workers[0].kill()
    psutil.wait_procs(workers[:1], timeout=10)
    assert len(list(out.glob("part-*.parquet"))) < N_SHARDS, "the kill came after the job's end"
    hold.unlink()
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log
    assert_same_as_predict(out, reference, photos)


def test_a_driver_killed_mid_job_is_finished_by_resume_with_the_same_output(cluster, ray_env, tiny_clip, photos,
                                                                            reference, tmp_path):
    out = tmp_path / "run"
    args = geolocate_args(cluster, str(Path(photos[0]).parent), out, tiny_clip)
    proc = run_job(ray_env, *args, hold=hold_after(tmp_path, 3), wait=False)  # the hold stays: the rest never runs
    wait_for_shards(out, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    cluster.wait_for_no_actors()  # Ray ends the dead driver's workers: none can still finish a shard
    done_before = len(list(out.glob("part-*.parquet")))
    assert 3 <= done_before < N_SHARDS
    code, log = run_job(ray_env, *args)
    assert code == 2 and "--resume" in log  # a second run without --resume never writes over the first
    code, log = run_job(ray_env, *args, "--resume")
    assert code == 0, log
    assert f"{done_before} of {N_SHARDS} shards already done" in log
    assert_same_as_predict(out, reference, photos)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["failed"]) == (N_PHOTOS - 2, 2)


def test_a_worker_node_lost_mid_job_loses_nothing_and_duplicates_nothing(cluster, ray_env, tiny_clip, photos,
                                                                          reference, tmp_path):
    out = tmp_path / "run"
    node = cluster.node_ports[0]
    hold = hold_after(tmp_path, 2)
    proc = run_job(ray_env, *geolocate_args(cluster, str(Path(photos[0]).parent), out, tiny_clip), hold=hold,
                   wait=False)
    wait_for_shards(out, 2, proc)
    assert cluster.actors_on(node), "no worker of this job runs on the second node"
    cluster.kill_node(node)
    assert len(list(out.glob("part-*.parquet"))) < N_SHARDS, "the kill came after the job's end"
    hold.unlink()
    try:
        log, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, log
        assert_same_as_predict(out, reference, photos)
    finally:
        cluster.add_node(cpus=2)  # the next tests get their two nodes back


# ------------------------------------------------------------------ GPS embeddings at scale
def test_embedding_a_point_table_gives_one_row_per_input_row(cluster, ray_env, reference, tmp_path):
    import pyarrow.parquet as pq

    model, _, _ = reference
    rng = np.random.default_rng(3)
    latlon = np.column_stack([rng.uniform(-80, 80, 57), rng.uniform(-180, 180, 57)])
    lines = ["name,Latitude,Longitude"] + [f"p{i},{float(a)!r},{float(b)!r}" for i, (a, b) in enumerate(latlon)]
    lines[5] = "bad,95.0,10.0"
    (tmp_path / "points.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "emb"
    code, log = run_job(ray_env, "embed", "--points", str(tmp_path / "points.csv"), "--out", str(out),
                        "--address", cluster.address, "--shard-size", "20", "--workers", "2")
    assert code == 0, log
    rows = pq.read_table(sorted(out.glob("part-*.parquet"))).to_pylist()
    assert [r["id"] for r in rows] == list(range(57))
    assert rows[4]["embedding"] is None and "row 4" in rows[4]["error"]
    good = [i for i in range(57) if i != 4]
    got = np.array([rows[i]["embedding"] for i in good], dtype=np.float32)
    np.testing.assert_allclose(got, model.encode_locations(latlon[good]), rtol=0, atol=1e-6)
    assert "56 points done, 1 skipped" in log


def test_embed_photos_then_geolocate_with_the_collection_on_the_cluster(cluster, ray_env, tiny_clip, reference_model,
                                                                      scene_photos, scene_collection, tmp_path):
    """A reference collection embedded on the cluster is the local build's; geolocate --references fuses as
    ReferenceGeolocator does (its top-1 within 25 km for the scenes' held-out variants) and writes the matches."""
    import pyarrow.parquet as pq

    from model_utils.reference import ReferenceGeolocator, load_collection

    refs = tmp_path / "refs"
    code, log = run_job(ray_env, "embed-photos", "--photos", str(scene_photos[0].path.parent), "--out", str(refs),
                        "--address", cluster.address, "--clip-model", str(tiny_clip), "--precision", "fp32",
                        "--shard-size", "20", "--workers", "2", "--cpus-per-worker", "2")
    assert code == 0, log
    assert "60 photos done, 0 skipped" in log and "Leave-one-out on 60 reference photos" in log
    joined, local = load_collection(refs / "reference_index.safetensors"), scene_collection.collection
    assert joined.paths == local.paths and joined.fit["params"] == local.fit["params"]
    np.testing.assert_allclose(joined.embeddings, local.embeddings, atol=1e-6)

    queries = [p for p in scene_photos if p.query]
    out = tmp_path / "geo"
    code, log = run_job(ray_env, *geolocate_args(cluster, str(queries[0].path.parent), out, tiny_clip,
                                                 "--references", str(refs / "reference_index.safetensors")))
    assert code == 0, log
    fused = ReferenceGeolocator(reference_model, joined).predict([str(q.path) for q in queries], top_k=TOP_K)
    expected = {p.source: p for p in fused}
    top1 = {r["photo"]: r for r in read_rows(out)[1] if r["rank"] == 1}
    assert sorted(top1) == sorted(expected)
    for photo, pred in expected.items():
        assert (top1[photo]["lat"], top1[photo]["lon"]) == pytest.approx((pred.lat[0], pred.lon[0]))
    matches = pq.read_table(sorted(out.glob("matches-*.parquet"))).to_pylist()
    assert len(matches) == 10 * len(queries)


# ------------------------------------------------------------------ the Processing algorithm
def test_the_algorithm_runs_a_local_ray_loads_styled_results_and_stops_ray(geoclip_provider, qgis_new_project,  # noqa: ARG001
                                                                            tiny_clip, photos, reference, tmp_path,
                                                                            monkeypatch):
    import tempfile

    import processing
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer, QgsVectorLayer

    from tests.embedding_helpers import LogFeedback

    _, preds, _ = reference
    ray_dirs = []  # this run's Ray, told apart from any other Ray on the machine by its temporary folder
    mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: ray_dirs.append(mkdtemp(*a, **k)) or ray_dirs[-1])
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = LogFeedback()
    out = tmp_path / "archive_run"
    result = processing.runAndLoadResults("geoclip:geolocateraycluster", {
        "PHOTOS": str(Path(photos[0]).parent), "OUTPUT": str(out), "CLIP_MODEL": str(tiny_clip), "PRECISION": 1,
        "SHARD_SIZE": 10, "TOP_K": 3}, feedback=feedback, context=context)
    log = "\n".join(feedback.lines)
    assert Path(result["DENSITY"]) == out / "density.tif"
    from geoclip_qgis.basemap import is_basemap

    everything = QgsProject.instance().mapLayers().values()
    assert sum(map(is_basemap, everything)) == 1  # a new project's first results get a world under them, once
    layers = {layer.name(): layer for layer in everything if not is_basemap(layer)}
    points, density = layers["Top-1 locations"], layers["Archive density (photos per cell)"]
    assert isinstance(points, QgsVectorLayer) and isinstance(density, QgsRasterLayer)
    assert points.featureCount() == N_PHOTOS - 2
    for feature in points.getFeatures():
        pred = preds[feature["photo"]]
        assert (feature["lat"], feature["lon"]) == (pred.lat[0], pred.lon[0])
        assert feature.geometry().asPoint().x() == pred.lon[0]
    group = QgsProject.instance().layerTreeRoot().findGroup(f"GeoCLIP Ray {out.name}")
    assert group is not None and {n.layer().name() for n in group.findLayers()} == set(layers)
    assert density.renderer().type() == "singlebandpseudocolor"  # the per-photo rasters' style
    ray_dir = next(d for d in ray_dirs if Path(d).name.startswith("geoclip-ray-"))
    assert not ray_processes(ray_dir), f"the local Ray outlived the run:\n{log}"
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


def test_cancel_stops_the_job_on_the_cluster_and_resume_finishes_it(geoclip_provider, cluster, ray_env, tiny_clip,
                                                                    photos, reference, tmp_path, monkeypatch):
    import processing
    from qgis.core import QgsProcessingException
    from ray.job_submission import JobSubmissionClient

    from tests.embedding_helpers import LogFeedback

    out = tmp_path / "run"
    params = {"ADDRESS": cluster.dashboard, "TOKEN": ray_env["RAY_AUTH_TOKEN"], "PHOTOS": str(Path(photos[0]).parent),
              "OUTPUT": str(out), "CLIP_MODEL": str(tiny_clip), "PRECISION": 1, "SHARD_SIZE": SHARD, "TOP_K": TOP_K,
              "WORKERS": 2, "CPUS_PER_WORKER": 2}
    # forwarded to the job, like every GEOCLIP_* variable: once a shard is written, the others wait for the cancel
    monkeypatch.setenv("GEOCLIP_BATCH_HOLD_FILE", str(hold_after(tmp_path, 1)))
    feedback = LogFeedback()
    canceler = cancel_once_written(feedback, out, 1, N_SHARDS - 1)
    with pytest.raises(QgsProcessingException, match=r"Canceled: Ray job .* was stopped on the cluster \(STOPPED\)"):
        processing.run("geoclip:geolocateraycluster", params, feedback=feedback)
    canceler.join(timeout=10)
    client = JobSubmissionClient(cluster.dashboard, headers={"Authorization": f"Bearer {ray_env['RAY_AUTH_TOKEN']}"})
    mine = [j for j in client.list_jobs() if f"--out {out}" in j.entrypoint]
    assert [str(j.status).rsplit(".", 1)[-1] for j in mine] == ["STOPPED"]
    assert len(list(out.glob("part-*.parquet"))) < N_SHARDS
    assert not list(out.glob(".*")), "a half-written shard was left behind"
    with pytest.raises(QgsProcessingException, match="Resume"):  # the folder holds the stopped job: never overwritten
        processing.run("geoclip:geolocateraycluster", params)
    monkeypatch.delenv("GEOCLIP_BATCH_HOLD_FILE")
    processing.run("geoclip:geolocateraycluster", {**params, "RESUME": True})
    assert_same_as_predict(out, reference, photos)
