"""Headless runs through ``qgis_process.bin`` (QGIS's own command line), with the plugin installed
into a throw-away profile exactly as a user's QGIS would load it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from osgeo import gdal

from tools.samples.official import kauai_png

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def qgis_process(tmp_path_factory, tiny_clip, geoclip_cache_dir):
    """Run ``qgis_process.bin`` with the plugin enabled in a fresh profile; returns a runner."""
    config = tmp_path_factory.mktemp("qgis-profile")
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "geoclip_qgis").symlink_to(ROOT / "geoclip_qgis")
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(config), PYTHONPATH=str(site), QT_QPA_PLATFORM="offscreen",
               GEOCLIP_CLIP_MODEL=str(tiny_clip), GEOCLIP_CACHE_DIR=str(geoclip_cache_dir), HF_HUB_OFFLINE="1")

    def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run([QGIS_PROCESS, *args], capture_output=True, text=True, env=env, timeout=timeout)

    enabled = run("plugins", "enable", "geoclip_qgis")
    assert enabled.returncode == 0, enabled.stderr[-2000:]
    return run


def test_algorithms_are_listed(qgis_process):
    listing = qgis_process("list").stdout
    for alg in ("geolocatephotos", "geolocatetext", "gpsembeddings", "evaluategeolocation", "downstreamclassifier",
                "placeslikehere"):
        assert f"geoclip:{alg}" in listing


def test_geolocate_photos_headless(qgis_process, tmp_path):
    result = qgis_process("run", "geoclip:geolocatephotos", "--json", f"--PHOTOS={kauai_png()}", "--TOP_K=3",
                          "--CELL_SIZE=2", f"--OUTPUT_FOLDER={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    outputs = json.loads(result.stdout)["results"]
    assert outputs["N_PHOTOS"] == 1
    raster = outputs["RASTERS"][0] if isinstance(outputs["RASTERS"], list) else outputs["RASTERS"].split(";")[0]
    values = gdal.Open(raster).ReadAsArray()
    assert values.shape == (90, 180) and abs(values.sum() - 1) < 1e-3
    assert Path(outputs["POINTS"]).is_file()
