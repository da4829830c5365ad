"""Photo EXIF through the loader: orientation applied, GPS and capture date read, broken EXIF harmless.

Split from test_images (colour modes, bad files); every fixture image is generated here with PIL.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from PIL import Image

from model_utils.photos.images import PhotoError, load_photo, read_exif_gps
from tools.samples.photos import assert_close, rgb_at

# Hand-built EXIF, so tests can store values PIL's writer refuses (wrong types, zero denominators).
ASCII, RATIONAL = 2, 5


def ascii_tag(tag: int, text: str) -> tuple[int, int, int, bytes]:
    data = text.encode() + b"\x00"
    return tag, ASCII, len(data), data


def rational_tag(tag: int, *pairs: tuple[int, int]) -> tuple[int, int, int, bytes]:
    return tag, RATIONAL, len(pairs), b"".join(struct.pack("<II", n, d) for n, d in pairs)


def raw_gps_exif(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """APP1 payload: little-endian TIFF, IFD0 with only a GPS pointer, then the GPS IFD."""
    gps_offset = 8 + 2 + 12 + 4
    data_offset = gps_offset + 2 + 12 * len(entries) + 4
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x8825, 4, 1, gps_offset) + struct.pack("<I", 0)
    table, extra = b"", b""
    for tag, kind, count, payload in sorted(entries):
        if len(payload) <= 4:
            table += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\x00")
        else:
            table += struct.pack("<HHII", tag, kind, count, data_offset + len(extra))
            extra += payload + b"\x00" * (len(payload) % 2)
    gps = struct.pack("<H", len(entries)) + table + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd0 + gps + extra


def jpeg_with_raw_exif(path: Path, exif: bytes) -> Path:
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, "JPEG", exif=exif)
    return path



# ---------------------------------------------------------------------------------- orientation


def marked_corner_jpeg(path: Path, orientation: int | None) -> Path:
    """40x20 grey image with an 8x8 red block in the stored top-left corner."""
    im = Image.new("RGB", (40, 20), (128, 128, 128))
    im.paste((255, 0, 0), (0, 0, 8, 8))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    im.save(path, "JPEG", quality=95, exif=exif)
    return path


def is_red(rgb: tuple[int, int, int]) -> bool:
    return rgb[0] > 200 and rgb[1] < 60 and rgb[2] < 60


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (None, (40, 20), (3, 3)),  # no tag: as stored
        (1, (40, 20), (3, 3)),
        (3, (40, 20), (36, 16)),  # 180 degrees: bottom-right
        (6, (20, 40), (16, 3)),  # rotate 90 clockwise: top-left goes top-right
        (8, (20, 40), (3, 36)),  # rotate 90 counter-clockwise: top-left goes bottom-left
    ],
)
def test_exif_orientation(tmp_path, orientation, size, corner):
    photo = load_photo(marked_corner_jpeg(tmp_path / "o.jpg", orientation))
    assert photo.image.size == size
    assert is_red(rgb_at(photo, *corner))
    others = [(3, 3), (size[0] - 4, 3), (3, size[1] - 4), (size[0] - 4, size[1] - 4)]
    assert sum(is_red(rgb_at(photo, *xy)) for xy in others) == 1


def test_orientation_six_exact_case(tmp_path):
    photo = load_photo(marked_corner_jpeg(tmp_path / "six.jpg", 6))
    assert photo.image.size == (20, 40)
    assert is_red(rgb_at(photo, 19, 0))
    assert not is_red(rgb_at(photo, 0, 0))
    assert not is_red(rgb_at(photo, 0, 39))


# ------------------------------------------------------------------------------------------ GPS


def save_with_gps(path: Path, gps: dict, taken: str | None = None, fmt: str = "JPEG") -> Path:
    exif = Image.Exif()
    exif[0x8825] = gps
    if taken is not None:
        exif[0x8769] = {0x9003: taken}
    Image.new("RGB", (8, 8), (50, 60, 70)).save(path, fmt, exif=exif)
    return path


SYDNEY = {1: "S", 2: (33.0, 51.0, 35.9), 3: "E", 4: (151.0, 12.0, 40.0)}
SYDNEY_LATLON = (-(33 + 51 / 60 + 35.9 / 3600), 151 + 12 / 60 + 40 / 3600)


def test_gps_south_west_are_negative(tmp_path):
    path = save_with_gps(tmp_path / "sw.jpg", {1: "S", 2: (22.0, 54.0, 30.0), 3: "W", 4: (43.0, 11.0, 45.5)})
    lat, lon = read_exif_gps(path)
    assert lat == pytest.approx(-(22 + 54 / 60 + 30 / 3600), abs=1e-6)
    assert lon == pytest.approx(-(43 + 11 / 60 + 45.5 / 3600), abs=1e-6)
    assert lat < 0 and lon < 0


def test_gps_and_date_through_load_photo(tmp_path):
    path = save_with_gps(tmp_path / "syd.jpg", SYDNEY, taken="2019:12:31 23:59:58")
    photo = load_photo(path)
    assert photo.gps == pytest.approx(SYDNEY_LATLON, abs=1e-6)
    assert photo.taken == "2019:12:31 23:59:58"
    assert rgb_at(photo, 0, 0) != (0, 0, 0)


def test_gps_from_png_and_from_in_memory_image(tmp_path):
    path = save_with_gps(tmp_path / "syd.png", SYDNEY, fmt="PNG")
    assert read_exif_gps(path) == pytest.approx(SYDNEY_LATLON, abs=1e-6)
    with Image.open(path) as im:
        assert read_exif_gps(im) == pytest.approx(SYDNEY_LATLON, abs=1e-6)


def test_gps_raw_rationals_lowercase_ref_and_decimal_degrees(tmp_path):
    dms = raw_gps_exif([
        ascii_tag(1, "n"),
        rational_tag(2, (40, 1), (4530, 100), (0, 1)),  # 40 deg 45.30 min
        ascii_tag(3, "W"),
        rational_tag(4, (73, 1), (59, 1), (1234, 100)),
    ])
    assert read_exif_gps(jpeg_with_raw_exif(tmp_path / "dms.jpg", dms)) == pytest.approx(
        (40 + 45.30 / 60, -(73 + 59 / 60 + 12.34 / 3600)), abs=1e-6
    )
    decimal = raw_gps_exif([
        ascii_tag(1, "S"), rational_tag(2, (1234567, 100000)), ascii_tag(3, "E"), rational_tag(4, (5, 2)),
    ])
    assert read_exif_gps(jpeg_with_raw_exif(tmp_path / "dec.jpg", decimal)) == pytest.approx(
        (-12.34567, 2.5), abs=1e-6
    )


def test_no_exif_and_no_gps_give_none(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "bare.jpg")
    assert read_exif_gps(tmp_path / "bare.jpg") is None
    assert load_photo(tmp_path / "bare.jpg").gps is None
    exif = Image.Exif()
    exif[0x0110] = "Camera without GPS"
    Image.new("RGB", (4, 4)).save(tmp_path / "nogps.jpg", exif=exif)
    assert read_exif_gps(tmp_path / "nogps.jpg") is None
    assert read_exif_gps(Image.new("RGB", (4, 4))) is None


GOOD_LAT = rational_tag(2, (10, 1), (0, 1), (0, 1))
GOOD_LON = rational_tag(4, (20, 1), (0, 1), (0, 1))


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([ascii_tag(1, "X"), GOOD_LAT, ascii_tag(3, "E"), GOOD_LON], id="bad-lat-ref"),
        pytest.param([ascii_tag(1, "N"), GOOD_LAT, ascii_tag(3, "N"), GOOD_LON], id="lon-ref-N"),
        pytest.param([GOOD_LAT, GOOD_LON], id="no-refs"),
        pytest.param([ascii_tag(1, "N"), GOOD_LAT, ascii_tag(3, "E")], id="no-longitude"),
        pytest.param(
            [ascii_tag(1, "N"), rational_tag(2, (95, 1), (0, 1), (0, 1)), ascii_tag(3, "E"), GOOD_LON],
            id="lat-95",
        ),
        pytest.param(
            [ascii_tag(1, "N"), GOOD_LAT, ascii_tag(3, "W"), rational_tag(4, (181, 1), (0, 1), (0, 1))],
            id="lon-181",
        ),
        pytest.param(
            [ascii_tag(1, "N"), rational_tag(2, (10, 0), (0, 1), (0, 1)), ascii_tag(3, "E"), GOOD_LON],
            id="zero-denominator",
        ),
        pytest.param(
            [ascii_tag(1, "N"), rational_tag(2, (10, 1), (75, 1), (0, 1)), ascii_tag(3, "E"), GOOD_LON],
            id="minutes-75",
        ),
        pytest.param(
            [ascii_tag(1, "N"), ascii_tag(2, "10.5"), ascii_tag(3, "E"), GOOD_LON], id="lat-as-text"
        ),
        pytest.param(
            [ascii_tag(1, "N"), rational_tag(2, (0, 1), (0, 1), (0, 1)),
             ascii_tag(3, "E"), rational_tag(4, (0, 1), (0, 1), (0, 1))],
            id="null-island-placeholder",
        ),
    ],
)
def test_malformed_gps_gives_none(tmp_path, entries):
    path = jpeg_with_raw_exif(tmp_path / "bad.jpg", raw_gps_exif(entries))
    assert read_exif_gps(path) is None
    photo = load_photo(path)  # the photo itself is still fine
    assert photo.gps is None
    assert_close(rgb_at(photo, 4, 4), (10, 20, 30), tol=4)


def test_valid_raw_gps_control(tmp_path):
    """The same builder with sane values does give a position, so the None cases mean something."""
    path = jpeg_with_raw_exif(
        tmp_path / "ok.jpg", raw_gps_exif([ascii_tag(1, "N"), GOOD_LAT, ascii_tag(3, "E"), GOOD_LON])
    )
    assert read_exif_gps(path) == (10.0, 20.0)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_garbage_exif_block_never_raises(tmp_path):
    path = jpeg_with_raw_exif(tmp_path / "junk.jpg", b"Exif\x00\x00II*\x00\xff\xff\xff\x7f garbage")
    assert read_exif_gps(path) is None
    assert load_photo(path).gps is None
    im = Image.new("RGB", (4, 4))
    im.getexif()[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}  # in-memory GPS PIL cannot follow
    assert read_exif_gps(im) is None


def test_read_exif_gps_on_a_missing_file_is_a_photo_error(tmp_path):
    with pytest.raises(PhotoError, match="ghost.jpg"):
        read_exif_gps(tmp_path / "ghost.jpg")


