"""``make demo`` end to end, with a backbone (the tiny CLIP as a user's GEOCLIP_CLIP_MODEL): every part runs and
the maps are written. A subprocess, as ``make demo`` runs it: a crash (one in the titled map's drawing was found
this way) fails the test instead of taking the suite down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_every_part_with_a_backbone(tiny_clip, geoclip_cache_dir, tmp_path):
    env = {**os.environ, "GEOCLIP_CLIP_MODEL": str(tiny_clip), "GEOCLIP_CACHE_DIR": str(geoclip_cache_dir),
           "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "tools.demo", "--out", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    for part in ("geolocate photos", "text query", "GPS embeddings", "places like here"):
        assert f"ok      {part}" in done.stdout, done.stdout[-2000:]
    for name in ("demo_map.png", "places_like_paris.png"):
        assert (tmp_path / name).stat().st_size > 20_000
