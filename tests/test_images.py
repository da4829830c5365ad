"""Photo loading: colour modes, EXIF orientation and GPS, and one clear error per bad file.

Every fixture image is generated here with PIL in tmp_path; nothing is committed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from model_utils.photos.folders import find_photos
from model_utils.photos.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    PhotoError,
    iter_photos,
    load_photo,
)
from tools.samples.photos import assert_close, noisy_rgb, rgb_at

# ------------------------------------------------------------------------------------- helpers










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


def test_a_dangling_link_is_a_per_file_error_not_left_out(tmp_path):
    """A link to a photo that was moved is reported with the others' results, not silently skipped."""
    Image.new("RGB", (3, 3), (1, 1, 1)).save(tmp_path / "kept.png")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "moved-away" / "gone.jpg")
    (tmp_path / "notes-link.txt").symlink_to(tmp_path / "nowhere.txt")  # not a photo name: not listed
    found = find_photos(tmp_path)
    assert found == [tmp_path / "gone.jpg", tmp_path / "kept.png"]
    results = {Path(source).name: (photo, error) for source, (_, photo, error) in zip(found, iter_photos(found))}
    assert results["kept.png"][0] is not None
    photo, error = results["gone.jpg"]
    assert photo is None and "gone.jpg" in error and "link to" in error and "does not exist" in error
