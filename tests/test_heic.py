"""iPhone photos: HEIC / HEIF files written by pillow-heif (as a phone writes them: EXIF GPS, the orientation as
the file's rotation) decode like JPEGs, and a folder scan names every file it leaves out, by reason, in the
log, the run summary, the outputs and the report. Nothing here is a committed binary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer

from model_utils.photos.folders import scan_photos
from model_utils.photos.formats import HEIF_MISSING, RAW, SIDECAR, VIDEO
from model_utils.photos.images import IMAGE_EXTENSIONS, load_photo, read_exif_gps
from tools.samples.photos import write_gps_photo, write_photos

REPO = Path(__file__).resolve().parents[1]
PARIS, SYDNEY, CAPE_TOWN = (48.8566, 2.3522), (-33.8568, 151.2153), (-33.9249, 18.4241)


@pytest.fixture(scope="module")
def phone_folder(tmp_path_factory) -> Path:
    """What a phone's camera roll copied to a PC looks like: HEIC, HEIF, JPEG, PNG, videos, a RAW and sidecars."""
    folder = tmp_path_factory.mktemp("camera_roll")
    write_gps_photo(folder / "IMG_0001.HEIC", *PARIS, size=(96, 64), orientation=6)
    write_gps_photo(folder / "IMG_0002.heic", *SYDNEY, size=(96, 64), seed=2)
    write_gps_photo(folder / "PXL_0003.heif", *CAPE_TOWN, size=(96, 64), seed=3)
    write_gps_photo(folder / "IMG_0004.jpg", *SYDNEY, size=(96, 64), seed=4, orientation=6)
    write_photos(folder / "tmp", n=1, size=(96, 64))[0].rename(folder / "IMG_0005.png")
    (folder / "tmp").rmdir()
    for name in ("IMG_0006.MOV", "IMG_0007.mp4", "clip.mp4"):
        (folder / name).write_bytes(b"\x00\x00\x00\x18ftypmp42 not decoded")
    (folder / "IMG_0008.dng").write_bytes(b"II*\x00 raw")
    (folder / "IMG_0001.AAE").write_text("<plist/>")
    return folder


def test_heic_decodes_with_its_orientation_and_gps_like_a_jpeg(phone_folder):
    assert {".heic", ".heif"} <= IMAGE_EXTENSIONS  # pillow-heif is a dependency
    heic = load_photo(phone_folder / "IMG_0001.HEIC")
    jpeg = load_photo(phone_folder / "IMG_0004.jpg")
    assert heic.image.mode == "RGB" and heic.image.size == (64, 96) == jpeg.image.size  # turned upright
    for photo in (heic, jpeg):  # orientation 6: the stored top-left corner is now the top-right one
        pixels = np.asarray(photo.image, dtype=int)
        assert pixels[:8, -8:, 0].mean() > 200 and pixels[:8, -8:, 1:].mean() < 60
    assert heic.gps == pytest.approx(PARIS, abs=1e-4)
    assert read_exif_gps(phone_folder / "PXL_0003.heif") == pytest.approx(CAPE_TOWN, abs=1e-4)


def test_a_folder_scan_names_every_file_it_leaves_out(phone_folder):
    scan = scan_photos(phone_folder)
    assert [p.name for p in scan.photos] == ["IMG_0001.HEIC", "IMG_0002.heic", "IMG_0004.jpg", "IMG_0005.png",
                                             "PXL_0003.heif"]
    assert scan.n_skipped == 5
    lines = scan.skipped_lines()
    assert f"2 .mp4 files skipped: {VIDEO} (IMG_0007.mp4, clip.mp4)" in lines
    assert f"1 .mov file skipped: {VIDEO} (IMG_0006.MOV)" in lines
    assert f"1 .dng file skipped: {RAW} (IMG_0008.dng)" in lines
    assert f"1 .aae file skipped: {SIDECAR} (IMG_0001.AAE)" in lines


SCAN_WITHOUT_HEIF = """
import sys
sys.modules["pillow_heif"] = None  # what an install without pillow-heif looks like to importlib
from model_utils.photos.folders import scan_photos
scan = scan_photos(sys.argv[1])
print([p.name for p in scan.photos])
print(scan.no_photo_message() if not scan.photos else "\\n".join(scan.skipped_lines()))
"""


def test_without_pillow_heif_heic_files_are_skipped_with_the_reason(phone_folder, tmp_path):
    """A fresh interpreter, as QGIS without the package: HEIC is not offered, and its files say why."""
    only_heic = tmp_path / "iphone"
    only_heic.mkdir()
    for name in ("IMG_0001.HEIC", "IMG_0002.heic"):
        (only_heic / name).write_bytes((phone_folder / name).read_bytes())
    for folder, photos in ((phone_folder, ["IMG_0004.jpg", "IMG_0005.png"]), (only_heic, [])):
        done = subprocess.run([sys.executable, "-c", SCAN_WITHOUT_HEIF, str(folder)], cwd=REPO, capture_output=True,
                              text=True, check=True)
        found, text = done.stdout.split("\n", 1)
        assert found == repr(photos)
        assert f"2 .heic files skipped: {HEIF_MISSING} (IMG_0001.HEIC, IMG_0002.heic)" in text
    assert text.startswith(f"The folder {only_heic} holds 2 files but no photo this plugin can read: ")
    assert "the Setup tab of the GeoCLIP panel installs it" in HEIF_MISSING


def run(params, feedback=None):
    import processing

    return processing.run("geoclip:geolocatephotos", params, feedback=feedback)


class Log:
    """A feedback that keeps every line the run reports."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class Keeping(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.lines = []

            def pushInfo(self, info):  # noqa: N802 - QGIS API
                self.lines.append(info)

            def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS API
                self.lines.append(error)

        return Keeping()


def test_a_phone_folder_is_geolocated_with_exif_gps_and_its_skipped_files_reported(geoclip_provider, clip_env,
                                                                                   phone_folder, tmp_path):
    log = Log()
    out = run({"FOLDER": str(phone_folder), "TOP_K": 1, "CELL_SIZE": 5.0, "CREDIBLE_LEVELS": "",
               "OUTPUT_FOLDER": str(tmp_path)}, log)
    assert out["N_PHOTOS"] == 5 and out["N_FAILED"] == 0 and out["N_SKIPPED"] == 5
    assert f"2 .mp4 files skipped: {VIDEO} (IMG_0007.mp4, clip.mp4)" in out["SKIPPED"].split("\n")
    text = "\n".join(log.lines)
    assert f"1 .dng file skipped: {RAW} (IMG_0008.dng)" in text  # the log, as the folder is read
    summary = next(line for line in log.lines if line.startswith("5 geolocated"))
    assert "not geolocated from the folder: 2 .mp4 files skipped" in summary and ".mov" in summary
    points = QgsVectorLayer(out["POINTS"], "p", "ogr")
    truth = {f["photo_name"]: (f["true_lat"], f["true_lon"]) for f in points.getFeatures()}
    assert truth["IMG_0001.HEIC"] == pytest.approx(PARIS, abs=1e-4)  # EXIF GPS of a HEIC reaches the error line
    assert truth["PXL_0003.heif"] == pytest.approx(CAPE_TOWN, abs=1e-4)
    html = Path(out["REPORT_HTML"]).read_text(encoding="utf-8")
    assert "Files not geolocated" in html and "1 .dng file skipped" in html and "IMG_0001.HEIC" in html


def test_a_folder_of_videos_only_says_exactly_that(geoclip_provider, clip_env, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.MOV"):
        (folder / name).write_bytes(b"\x00")
    (folder / "trip").mkdir()
    with pytest.raises(QgsProcessingException) as caught:
        run({"FOLDER": str(folder), "OUTPUT_FOLDER": str(tmp_path / "out")})
    message = str(caught.value)
    assert message.startswith(f"The folder {folder} holds 3 files but no photo this plugin can read: ")
    assert f"2 .mp4 files skipped: {VIDEO} (a.mp4, b.mp4)" in message
    assert "1 sub-folder not searched (trip): include subfolders" in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QgsProcessingException, match=f"The folder {empty} is empty"):
        run({"FOLDER": str(empty), "OUTPUT_FOLDER": str(tmp_path / "out")})


def test_the_photo_dialog_offers_the_formats_that_can_be_opened(qgis_iface):
    from geoclip_qgis.ui.geolocate_tab import GeolocateTab

    tab = GeolocateTab(qgis_iface)
    tab.show()  # the first show reads the installed formats
    photo_filter = tab.files.filter()
    for suffix in sorted(IMAGE_EXTENSIONS):
        assert f"*{suffix} *{suffix.upper()}" in photo_filter
    assert "*.heic" in photo_filter and "*.mp4" not in photo_filter
    tab.close()
