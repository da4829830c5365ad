"""Photo loading: colour modes, EXIF orientation and GPS, and one clear error per bad file.

Every fixture image is generated here with PIL in tmp_path; nothing is committed.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from model_utils import images
from model_utils.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    Photo,
    PhotoError,
    find_photos,
    iter_photos,
    load_photo,
    read_exif_gps,
)

# ------------------------------------------------------------------------------------- helpers


def rgb_at(photo: Photo, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.asarray(photo.image)[y, x])


def assert_close(actual, expected, tol: int) -> None:
    diff = np.abs(np.asarray(actual, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.max() <= tol, f"{actual} is not within {tol} of {expected}"


def noisy_rgb(width: int = 64, height: int = 64, seed: int = 0) -> Image.Image:
    """Random pixels compress badly, so a truncated file really misses image data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid-looking PNG whose header claims width x height but holds only a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


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


# ------------------------------------------------------------------------------ constants / api


def test_image_extensions_are_lowercase_suffixes():
    for ext in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"):
        assert ext in IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)
    Image.init()
    assert (".heic" in IMAGE_EXTENSIONS) == ("HEIF" in Image.OPEN)
    assert DEFAULT_MAX_PIXELS == 100_000_000


def test_photo_error_is_a_geoclip_error():
    from model_utils.errors import GeoClipError

    assert issubclass(PhotoError, GeoClipError)
    assert issubclass(PhotoError, Exception)


# ------------------------------------------------------------------------------------- colour


def test_rgb_jpeg_loads_detached_from_its_file(tmp_path):
    path = tmp_path / "plain.jpg"
    Image.new("RGB", (16, 8), (200, 30, 60)).save(path, quality=95)
    photo = load_photo(path)
    assert photo.source == str(path)
    assert photo.image.mode == "RGB"
    assert photo.image.size == (16, 8)
    assert_close(rgb_at(photo, 3, 3), (200, 30, 60), tol=4)
    assert not isinstance(photo.image, ImageFile.ImageFile)  # a plain in-memory image
    path.unlink()  # nothing still reads from the file
    assert_close(rgb_at(photo, 15, 7), (200, 30, 60), tol=4)
    assert photo.gps is None
    assert photo.taken is None


def test_one_bit(tmp_path):
    im = Image.new("1", (2, 1), 0)
    im.putpixel((1, 0), 1)
    im.save(tmp_path / "bits.png")
    photo = load_photo(tmp_path / "bits.png")
    assert rgb_at(photo, 0, 0) == (0, 0, 0)
    assert rgb_at(photo, 1, 0) == (255, 255, 255)


def test_greyscale_l(tmp_path):
    Image.new("L", (3, 2), 77).save(tmp_path / "grey.png")
    photo = load_photo(tmp_path / "grey.png")
    assert photo.image.mode == "RGB"
    assert rgb_at(photo, 2, 1) == (77, 77, 77)


def test_greyscale_with_alpha_goes_onto_white(tmp_path):
    im = Image.new("LA", (3, 1))
    im.putpixel((0, 0), (100, 0))  # fully transparent
    im.putpixel((1, 0), (100, 255))  # opaque
    im.putpixel((2, 0), (0, 128))  # half transparent black
    im.save(tmp_path / "la.png")
    photo = load_photo(tmp_path / "la.png")
    assert rgb_at(photo, 0, 0) == (255, 255, 255)
    assert rgb_at(photo, 1, 0) == (100, 100, 100)
    assert_close(rgb_at(photo, 2, 0), (127, 127, 127), tol=1)


def test_rgba_transparent_is_white_not_black(tmp_path):
    im = Image.new("RGBA", (3, 1))
    im.putpixel((0, 0), (0, 0, 0, 0))
    im.putpixel((1, 0), (0, 0, 255, 255))
    im.putpixel((2, 0), (255, 0, 0, 128))
    im.save(tmp_path / "rgba.png")
    photo = load_photo(tmp_path / "rgba.png")
    assert rgb_at(photo, 0, 0) == (255, 255, 255)
    assert rgb_at(photo, 1, 0) == (0, 0, 255)
    assert_close(rgb_at(photo, 2, 0), (255, 127, 127), tol=1)


def palette_image() -> Image.Image:
    im = Image.new("P", (2, 1))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    im.putpixel((0, 0), 0)  # black
    im.putpixel((1, 0), 1)  # red
    return im


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_without_transparency(tmp_path, suffix):
    palette_image().save(tmp_path / f"pal{suffix}")
    photo = load_photo(tmp_path / f"pal{suffix}")
    assert rgb_at(photo, 0, 0) == (0, 0, 0)
    assert rgb_at(photo, 1, 0) == (255, 0, 0)


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_transparent_index_is_white(tmp_path, suffix):
    palette_image().save(tmp_path / f"pal{suffix}", transparency=0)
    assert Image.open(tmp_path / f"pal{suffix}").info.get("transparency") == 0
    photo = load_photo(tmp_path / f"pal{suffix}")
    assert rgb_at(photo, 0, 0) == (255, 255, 255)
    assert rgb_at(photo, 1, 0) == (255, 0, 0)


def test_cmyk_adobe_jpeg_pure_cyan(tmp_path):
    path = tmp_path / "cyan.jpg"
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(path, quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
        assert "adobe" in raw.info  # PIL writes Adobe (inverted) CMYK, the Photoshop flavour
    photo = load_photo(path)
    assert_close(rgb_at(photo, 8, 8), (0, 255, 255), tol=6)


def test_cmyk_tiff_magenta_and_black(tmp_path):
    im = Image.new("CMYK", (2, 1))
    im.putpixel((0, 0), (0, 255, 0, 0))
    im.putpixel((1, 0), (0, 0, 0, 255))
    im.save(tmp_path / "cmyk.tif")
    photo = load_photo(tmp_path / "cmyk.tif")
    assert rgb_at(photo, 0, 0) == (255, 0, 255)
    assert rgb_at(photo, 1, 0) == (0, 0, 0)


def test_cmyk_with_broken_icc_profile_falls_back(tmp_path):
    path = tmp_path / "badicc.tif"
    Image.new("CMYK", (4, 4), (255, 0, 0, 0)).save(path, icc_profile=b"not an icc profile")
    with Image.open(path) as raw:
        assert raw.info.get("icc_profile") == b"not an icc profile"
    assert rgb_at(load_photo(path), 1, 1) == (0, 255, 255)


def test_sixteen_bit_png_scales_full_range(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535, 257]], dtype=np.uint16)).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as raw:
        assert raw.mode == "I;16"
    photo = load_photo(tmp_path / "g16.png")
    assert [rgb_at(photo, x, 0)[0] for x in range(4)] == [0, 128, 255, 1]
    assert rgb_at(photo, 1, 0) == (128, 128, 128)


def test_sixteen_bit_big_endian_tiff(tmp_path):
    data = np.array([[0, 32768, 65535]], dtype=">u2")
    Image.frombytes("I;16B", (3, 1), data.tobytes()).save(tmp_path / "g16b.tif")
    with Image.open(tmp_path / "g16b.tif") as raw:
        assert raw.mode == "I;16B"
    photo = load_photo(tmp_path / "g16b.tif")
    assert [rgb_at(photo, x, 0) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_mode_i_with_sixteen_bit_values(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)).save(tmp_path / "i32.tif")
    with Image.open(tmp_path / "i32.tif") as raw:
        assert raw.mode == "I"
    photo = load_photo(tmp_path / "i32.tif")
    assert [rgb_at(photo, x, 0)[0] for x in range(3)] == [0, 128, 255]


def test_mode_i_beyond_sixteen_bits_is_stretched():
    im = Image.fromarray(np.array([[-1000, 0, 99000, 199000]], dtype=np.int32))
    photo = load_photo(im)
    assert [rgb_at(photo, x, 0)[0] for x in range(4)] == [0, 1, 128, 255]


def test_float_image_stretches_min_to_max(tmp_path):
    Image.fromarray(np.array([[-1.0, 0.0, 3.0]], dtype=np.float32)).save(tmp_path / "f.tif")
    with Image.open(tmp_path / "f.tif") as raw:
        assert raw.mode == "F"
    photo = load_photo(tmp_path / "f.tif")
    assert [rgb_at(photo, x, 0)[0] for x in range(3)] == [0, 64, 255]


def test_flat_float_image_is_black_not_an_error():
    photo = load_photo(Image.fromarray(np.full((2, 2), 5.0, dtype=np.float32)))
    assert rgb_at(photo, 1, 1) == (0, 0, 0)


@pytest.mark.parametrize("suffix", [".gif", ".tif"])
def test_multi_frame_uses_first_frame(tmp_path, suffix):
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 255, 0))]
    path = tmp_path / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as raw:
        assert raw.n_frames == 2
    photo = load_photo(path)
    assert_close(rgb_at(photo, 2, 2), (255, 0, 0), tol=2)


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".tiff", ".jpeg"])
def test_other_formats_load(tmp_path, suffix):
    path = tmp_path / f"blue{suffix}"
    Image.new("RGB", (8, 8), (20, 40, 220)).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    assert_close(rgb_at(load_photo(path), 4, 4), (20, 40, 220), tol=3)


def test_misnamed_png_with_jpg_suffix_still_loads(tmp_path):
    path = tmp_path / "really_png.jpg"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path, "PNG")
    assert rgb_at(load_photo(path), 0, 0) == (1, 2, 3)


def test_in_memory_image_is_converted_not_modified():
    original = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    photo = load_photo(original)
    assert photo.source == "<PIL image #0>"
    assert rgb_at(photo, 0, 0) == (255, 255, 255)
    assert original.mode == "RGBA"
    assert original.getpixel((0, 0)) == (0, 0, 0, 0)
    assert photo.image is not original


def test_rgb_in_memory_result_is_a_copy():
    original = Image.new("RGB", (2, 2), (9, 8, 7))
    photo = load_photo(original)
    photo.image.putpixel((0, 0), (0, 0, 0))
    assert original.getpixel((0, 0)) == (9, 8, 7)


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


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.jpg"
    Image.new("RGB", (4, 4)).save(path)
    path.chmod(0)
    try:
        with pytest.raises(PhotoError, match="permission") as err:
            load_photo(path)
        assert "secret.jpg" in str(err.value)
    finally:
        path.chmod(0o644)


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


# -------------------------------------------------------------------------------------- batches


def test_iter_photos_continues_past_bad_files(tmp_path):
    good_jpg = tmp_path / "good.jpg"
    Image.new("RGB", (6, 6), (0, 200, 0)).save(good_jpg, quality=95)
    good_png = tmp_path / "good.png"
    Image.new("RGB", (5, 5), (0, 0, 200)).save(good_png)
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    cut = tmp_path / "cut.png"
    noisy_rgb().save(cut)
    cut.write_bytes(cut.read_bytes()[:300])
    sources = [good_jpg, tmp_path / "missing.jpg", Image.new("L", (3, 3), 9), str(text), good_png, cut]

    results = list(iter_photos(sources))

    assert [index for index, _, _ in results] == [0, 1, 2, 3, 4, 5]
    assert [photo is not None for _, photo, _ in results] == [True, False, True, False, True, False]
    assert [error is None for _, _, error in results] == [True, False, True, False, True, False]
    assert_close(rgb_at(results[0][1], 1, 1), (0, 200, 0), tol=4)
    assert results[2][1].source == "<PIL image #2>"
    assert rgb_at(results[2][1], 0, 0) == (9, 9, 9)
    assert results[4][1].source == str(good_png)
    assert rgb_at(results[4][1], 4, 4) == (0, 0, 200)
    assert "missing.jpg" in results[1][2]
    assert "text.jpg" in results[3][2]
    assert "cut.png" in results[5][2]


def test_iter_photos_single_path_is_one_item(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (2, 2)).save(path)
    results = list(iter_photos(str(path)))
    assert len(results) == 1
    assert results[0][0] == 0
    assert results[0][1].source == str(path)


def test_iter_photos_honours_max_pixels(tmp_path):
    path = tmp_path / "ten.png"
    Image.new("RGB", (10, 10)).save(path)
    [(index, photo, error)] = list(iter_photos([path], max_pixels=50))
    assert (index, photo) == (0, None)
    assert "ten.png" in error and "limit" in error


# -------------------------------------------------------------------------------------- folders


@pytest.fixture()
def album(tmp_path: Path) -> Path:
    root = tmp_path / "album"
    names = [
        "b.png", "a.JPG", "c.Tiff", "notes.txt", ".hidden.jpg", "noext",
        "sub/d.jpeg", "sub/.e.png", "sub/deeper/f.webp",
        ".cache/g.jpg", "sub/.thumbs/h.jpg",
    ]
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (root / "folder.jpg").mkdir()  # a folder with a photo suffix is not a photo
    return root


def test_find_photos_top_level_only(album):
    assert find_photos(album) == [album / "a.JPG", album / "b.png", album / "c.Tiff"]


def test_find_photos_recursive(album):
    assert find_photos(str(album), recursive=True) == [
        album / "a.JPG",
        album / "b.png",
        album / "c.Tiff",
        album / "sub" / "d.jpeg",
        album / "sub" / "deeper" / "f.webp",
    ]


def test_find_photos_bad_folder(tmp_path):
    with pytest.raises(PhotoError, match="not found") as err:
        find_photos(tmp_path / "nope")
    assert "nope" in str(err.value)
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(PhotoError, match="not a folder") as err:
        find_photos(tmp_path / "file.jpg")
    assert "file.jpg" in str(err.value)


def test_find_photos_then_load(tmp_path):
    Image.new("RGB", (3, 3), (1, 1, 1)).save(tmp_path / "x.PNG")
    (tmp_path / "y.jpg").write_bytes(b"")
    found = find_photos(tmp_path)
    assert found == [tmp_path / "x.PNG", tmp_path / "y.jpg"]
    outcome = [(photo is not None, error is None) for _, photo, error in iter_photos(found)]
    assert outcome == [(True, True), (False, False)]
