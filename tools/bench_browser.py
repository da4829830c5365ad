"""Benchmark section ``browser``: a run of 1,000 photos through the dock's own code, and the results browser.

Each run happens in a fresh QGIS (a child process, ``python -m tools.bench_browser --child``): the plugin is
loaded as QGIS loads it, with a map canvas, a layer panel and the bridge between them; the dock's "Geolocate
photos" tab runs ``geoclip:geolocatephotos`` on a folder with the tiny test backbone, and Processing's own
loader adds the results, as after any dock run. Measured there:

* results shown: from the algorithm's end (the task reports it) to the layers loaded and styled, the map zoomed
  and the browser listing every photo with the thumbnails of the rows it draws;
* layers added to the project (the run's and the basemap);
* RSS after the run, against a 10-photo run in its own fresh QGIS;
* a photo switch: selecting a row of the browser until its raster, regions, points and zoom are set (20 rows
  spread over the list), and drawing the map after the last one (at 1366x768, as the canvas would).

The photos (small JPEGs, every 4th with EXIF GPS) and the tiny CLIP are written once under
``$TMPDIR/geoclip-bench-browser/``; each run writes its outputs into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tools.bench import add_metric, log
from tools.bench_rss import json_child

ROOT = Path(__file__).resolve().parents[1]
N_LARGE, N_SMALL = 1000, 10
N_SWITCHES = 20
CHILD_TIMEOUT_S = 3600
TARGET_SHOWN_S = ("<", 2.0)
TARGET_SWITCH_S = ("<", 0.3)
TARGET_LAYERS = ("<=", 10)
TARGET_RSS_RATIO = ("<=", 1.10)
MAP_SIZE = (1366, 768)


def inputs_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "geoclip-bench-browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def inputs() -> tuple[Path, Path]:
    """(tiny CLIP folder, photos root with ``n10/`` and ``n1000/``), written once."""
    from tools.samples.clip_factory import build_clip
    from tools.samples.photos import write_photo_set

    root = inputs_dir()
    clip = root / "clip-tiny"
    if not (clip / "config.json").is_file():
        build_clip(clip, size="tiny", seed=0, tokenizer=False)
    for n in (N_SMALL, N_LARGE):
        write_photo_set(root / f"n{n}", n, seed=0, gps_every=4)
    return clip, root


def bench_browser(out: dict) -> None:
    clip, photos = inputs()
    runs = {}
    for n in (N_SMALL, N_LARGE):
        log(f"browser: a run of {n} photos in a fresh QGIS")
        runs[n] = _run_child(photos / f"n{n}", clip)
    large, small = runs[N_LARGE], runs[N_SMALL]
    add_metric(out, f"results shown after the algorithm ends, {N_LARGE} photos", large["shown_s"], "s",
               TARGET_SHOWN_S, note=f"Processing's loader {large['load_s']:.2f} s (layers, styles, zoom), then the "
                                    f"browser's list and first rows {large['list_s']:.2f} s; {N_SMALL} photos: "
                                    f"{small['shown_s']:.2f} s")
    add_metric(out, f"layers added by a run of {N_LARGE} photos", large["layers"], "", TARGET_LAYERS,
               note=f"{', '.join(large['layer_names'])}; {N_SMALL} photos: {small['layers']}; "
                    f"{large['rasters_written']} rasters written")
    add_metric(out, f"RSS after the run, {N_LARGE} against {N_SMALL} photos", large["rss_mb"] / small["rss_mb"], "x",
               TARGET_RSS_RATIO, note=f"{large['rss_mb']:.0f} MB against {small['rss_mb']:.0f} MB; peak "
                                      f"{large['peak_mb']:.0f} MB against {small['peak_mb']:.0f} MB")
    add_metric(out, "photo switch in the browser (median of 20)", large["switch_median_s"], "s", TARGET_SWITCH_S,
               note=f"slowest {large['switch_max_s']:.3f} s; raster, regions, points, zoom")
    add_metric(out, "photo switch, slowest of 20", large["switch_max_s"], "s", TARGET_SWITCH_S)
    add_metric(out, f"drawing the map after a switch ({MAP_SIZE[0]}x{MAP_SIZE[1]})", large["render_s"], "s",
               note="every visible layer: the basemap, the photo's raster, its regions and line, all the points "
                    "(the photo's labelled)")
    add_metric(out, "drawing the whole run (Show all), the map on the world", large["render_all_s"], "s",
               note=f"every photo's regions and lines, {large['n'] * 5:,} points; {N_SMALL} photos: "
                    f"{small['render_all_s']:.2f} s")
    out["algorithm_s"] = {n: round(run["algorithm_s"], 1) for n, run in runs.items()}
    out["notes"] = [
        f"The algorithm itself took {large['algorithm_s']:.0f} s for {N_LARGE} photos with the tiny backbone "
        f"({small['algorithm_s']:.0f} s for {N_SMALL}); it is not part of the times above.",
        "Headless (offscreen): the desktop's layer panel and canvas add their own drawing to 'results shown'.",
    ]


def _run_child(photos: Path, clip: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               GEOCLIP_CLIP_MODEL=str(clip), GEOCLIP_CACHE_DIR=str(inputs_dir() / "cache"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="geoclip-bench-browser-") as work:
        return json_child([sys.executable, "-m", "tools.bench_browser", "--child", "--photos", str(photos),
                           "--work", work], f"the {photos.name} run in a fresh QGIS", env, CHILD_TIMEOUT_S)


# ---------------------------------------------------------------------------- the child: one run in a fresh QGIS
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args(argv)
    from tools.bench_browser_session import DockSession

    session = DockSession(args.work)
    record = session.run(args.photos)
    record.update(session.switch_photos(N_SWITCHES))
    record["render_s"] = session.render(MAP_SIZE)
    record["render_all_s"] = session.render_everything(MAP_SIZE)
    print(json.dumps(record), flush=True)  # before closing: the record is what the parent reads
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
