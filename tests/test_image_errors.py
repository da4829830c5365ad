"""Bad photo files: one clear PhotoError each (missing, empty, not an image, truncated, too large,
unreadable), never a crash or a half-grey decode.

Split from test_images (colour modes); every fixture file is generated here in tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from model_utils.photos import images
from model_utils.photos.images import PhotoError, load_photo, read_exif_gps
from tools.samples.photos import noisy_rgb

ROOT = Path(__file__).resolve().parents[1]


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid-looking PNG whose header claims width x height but holds only a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


# ----------------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    with pytest.raises(PhotoError, match="not found") as err:
        load_photo(tmp_path / "nowhere.jpg")
    assert "nowhere.jpg" in str(err.value)


def test_directory(tmp_path):
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    with pytest.raises(PhotoError, match="folder") as err:
        load_photo(folder)
    assert "album.jpg" in str(err.value)


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(PhotoError, match="empty") as err:
        load_photo(tmp_path / "empty.jpg")
    assert "empty.jpg" in str(err.value)


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("these are not pixels\n" * 20)
    with pytest.raises(PhotoError, match="not an image") as err:
        load_photo(tmp_path / "notes.jpg")
    assert "notes.jpg" in str(err.value)


def test_formats_outside_the_photo_list_are_refused(tmp_path):
    """PIL reads PPM, but only photo formats are decoded: exotic decoders stay out of the way."""
    path = tmp_path / "portable.jpg"
    Image.new("RGB", (4, 4), (7, 7, 7)).save(path, "PPM")
    with Image.open(path) as raw:
        assert raw.format == "PPM"
    with pytest.raises(PhotoError, match="not an image this plugin can read") as err:
        load_photo(path)
    assert "portable.jpg" in str(err.value)


@pytest.mark.parametrize(("suffix", "fmt"), [(".jpg", "JPEG"), (".png", "PNG")])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file_is_rejected_not_grey(tmp_path, suffix, fmt, keep):
    full = tmp_path / f"full{suffix}"
    noisy_rgb().save(full, fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(PhotoError, match="truncated") as err:
        load_photo(cut)
    assert cut.name in str(err.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # the global switch was left alone
    assert np.array_equal(np.asarray(load_photo(full).image), np.asarray(Image.open(full).convert("RGB")))


def test_max_pixels_is_checked(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (10, 10), (5, 5, 5)).save(path)
    assert load_photo(path, max_pixels=100).image.size == (10, 10)
    with pytest.raises(PhotoError, match="limit") as err:
        load_photo(path, max_pixels=99)
    assert "small.png" in str(err.value)
    assert "10 x 10" in str(err.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_header_over_default_limit_is_refused_before_decoding(tmp_path):
    # 120 MP: above our 100 MP default, below PIL's own error threshold (2 x 89.5 MP), so only
    # our check stands between this file and a 360 MB decode.
    path = png_claiming(tmp_path / "bomb.png", 12_000, 10_000)
    with pytest.raises(PhotoError, match="limit") as err:
        load_photo(path)
    assert "bomb.png" in str(err.value)
    assert "12000 x 10000" in str(err.value)
    with pytest.raises(PhotoError, match="limit"):
        read_exif_gps(path)


def test_bomb_refused_even_when_pil_limit_is_disabled(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # what some other plugin might do
    path = png_claiming(tmp_path / "huge.png", 50_000, 50_000)
    with pytest.raises(PhotoError, match="limit") as err:
        load_photo(path)
    assert "huge.png" in str(err.value)
    assert "50000 x 50000" in str(err.value)


def test_bomb_caught_by_pil_is_still_a_photo_error(tmp_path):
    assert Image.MAX_IMAGE_PIXELS is not None
    path = png_claiming(tmp_path / "giant.png", 60_000, 60_000)
    with pytest.raises(PhotoError) as err:
        load_photo(path, max_pixels=10**10)  # caller allows it, PIL's own guard still trips
    assert "giant.png" in str(err.value)
    assert "too large" in str(err.value)


def test_header_ok_but_pixels_missing(tmp_path):
    path = png_claiming(tmp_path / "hollow.png", 100, 100)
    with pytest.raises(PhotoError, match="truncated or damaged") as err:
        load_photo(path)
    assert "hollow.png" in str(err.value)


# Run by an unprivileged user: a child Python process as "nobody" when the tests run as root (as in CI),
# where root would read a mode-000 file anyway. It reads a sibling photo first, so a failure to read the
# locked one can only come from the file's own permissions, not from the folder, the repo or the venv.
UNPRIVILEGED_LOAD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from model_utils.photos.images import PhotoError, load_photo
readable = load_photo(sys.argv[2]).image.size
try:
    load_photo(sys.argv[3])
except PhotoError as exc:
    outcome = {"error": type(exc).__name__, "message": str(exc)}
else:
    outcome = {"error": None, "message": "loaded"}
print(json.dumps({"readable_size": list(readable), **outcome}))
"""


def as_nobody() -> list[str]:
    """A command prefix that runs the rest as user nobody, group nogroup, without root's groups."""
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    pytest.fail("running as root, and neither setpriv nor runuser (util-linux) is installed to drop to user "
                "nobody: install util-linux, or run the tests as an unprivileged user")


def test_unreadable_file(tmp_path):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        path = tmp_path / "secret.jpg"
        Image.new("RGB", (4, 4)).save(path)
        path.chmod(0)
        try:
            with pytest.raises(PhotoError, match="permission") as err:
                load_photo(path)
            assert "secret.jpg" in str(err.value)
        finally:
            path.chmod(0o644)
        return

    # A fresh folder nobody can enter, directly under the system temp folder (pytest's own base folder
    # is private to root); /tmp itself is world-traversable.
    folder = Path(tempfile.mkdtemp(prefix="geoclip-permission-"))
    try:
        folder.chmod(0o755)
        readable = folder / "readable.jpg"
        Image.new("RGB", (6, 5)).save(readable)
        readable.chmod(0o644)
        path = folder / "secret.jpg"
        Image.new("RGB", (4, 4)).save(path)
        path.chmod(0)
        # the checkout and its venv may sit where nobody cannot look (a CI home folder): the child gets a
        # copy of model_utils beside the photos and the base interpreter, whose numpy and PIL are the system's
        shutil.copytree(ROOT / "model_utils", folder / "model_utils",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for entry in folder.rglob("*"):
            if entry.name != "secret.jpg":
                entry.chmod(0o755 if entry.is_dir() else 0o644)
        python = getattr(sys, "_base_executable", None) or sys.executable
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(folder)}
        done = subprocess.run([*as_nobody(), python, "-c", UNPRIVILEGED_LOAD, str(folder), str(readable),
                               str(path)], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"the child as nobody failed:\n{done.stdout}\n{done.stderr}"
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        assert outcome["readable_size"] == [6, 5]  # the folder, repo and venv are readable by nobody
        assert outcome["error"] == "PhotoError", outcome
        assert "permission" in outcome["message"] and "secret.jpg" in outcome["message"], outcome
    finally:
        shutil.rmtree(folder)


def test_permission_error_message(tmp_path, monkeypatch):
    path = tmp_path / "locked.jpg"
    Image.new("RGB", (4, 4)).save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "open", refuse, raising=False)
    with pytest.raises(PhotoError, match="permission denied") as err:
        load_photo(path)
    assert "locked.jpg" in str(err.value)


def test_not_a_path_or_image():
    with pytest.raises(PhotoError, match="int"):
        load_photo(42)


def test_max_pixels_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_pixels"):
        load_photo(Image.new("RGB", (2, 2)), max_pixels=0)
