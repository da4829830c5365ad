"""A full disk said plainly, on real small file systems: a run refuses up front in one line when the output
folder's disk lacks the room, a disk that fills up mid-run is named as full with what was kept (nothing), and
the gallery cache and the dependency installer say the same. Everything left behind is checked to be nothing."""

from __future__ import annotations

import re

import numpy as np
import pytest
from qgis.core import QgsProcessingException

from tests.disk_faults import fill, small_disk
from tools.samples.photos import write_photos


def run(params):
    import processing

    return processing.run("geoclip:geolocatephotos", params)


def test_a_run_into_a_nearly_full_disk_refuses_up_front(geoclip_provider, clip_env, tmp_path):
    photos = [str(p) for p in write_photos(tmp_path / "in", n=3, size=(64, 48))]
    with small_disk(tmp_path / "disk", "3m") as disk:
        earlier = disk / "earlier.txt"
        earlier.write_text("an earlier result")
        with pytest.raises(QgsProcessingException) as caught:
            run({"PHOTOS": photos, "CELL_SIZE": 0.25, "OUTPUT_FOLDER": str(disk)})
        message = str(caught.value)
        assert re.fullmatch(rf"This run needs about [\d.]+ MB, [\d.]+ MB free on the disk holding {disk}\. Free some "
                            r"space there, or choose a folder on another disk\.", message), message
        assert [p.name for p in disk.iterdir()] == ["earlier.txt"]


def test_a_disk_that_fills_mid_run_is_named_full_and_nothing_is_kept(geoclip_provider, clip_env, tmp_path,
                                                                     monkeypatch):
    """The estimate passed, then another program filled the disk: GDAL's 'TIFFAppendToStrip: Write error'
    becomes the full disk's name, and the run's folder is gone."""
    from geoclip_qgis.processing.geolocation import job as geolocation_job

    photos = [str(p) for p in write_photos(tmp_path / "in", n=4, size=(64, 48))]
    monkeypatch.setattr(geolocation_job, "refuse_without_space", lambda _job: "(not checked)")
    with small_disk(tmp_path / "disk", "4m") as disk:
        filler = fill(disk, leave=1_500_000)  # room for one 0.25 degree raster, not for four
        with pytest.raises(QgsProcessingException) as caught:
            run({"PHOTOS": photos, "CELL_SIZE": 0.25, "CREDIBLE_LEVELS": "", "OUTPUT_FOLDER": str(disk)})
        message = str(caught.value)
        assert message.startswith(f"The disk holding {disk} is full (")
        assert "nothing of this run was kept. Free some space there, or choose a folder on another disk." in message
        assert "TIFF" not in message
        assert [p.name for p in disk.iterdir()] == [filler.name]


def test_the_gallery_cache_says_its_disk_is_full_and_leaves_nothing(tmp_path):
    from model_utils.model.gallery import Gallery, gallery_embeddings

    gallery = Gallery.grid(2.0, (-60, -40, 60, 40))  # 2,400 points: 4.9 MB of embeddings
    rng = np.random.default_rng(0)

    def encode(latlon):
        emb = rng.normal(size=(len(latlon), 512)).astype(np.float32)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    messages: list[str] = []
    with small_disk(tmp_path / "cache", "1m") as cache:
        out = gallery_embeddings(gallery, encode, "weights", cache_dir=cache, progress=lambda _f, m: messages.append(m))
        assert out.shape == (len(gallery), 512)  # the result is still given
        full = [m for m in messages if m.startswith(f"The disk holding {cache} is full")]
        assert full and "the gallery embeddings (4.9 MB) were not saved" in full[0]
        assert "the next run encodes the 2,400 points again" in full[0]
        assert list(cache.iterdir()) == []


def test_the_installer_refuses_a_small_disk_and_names_one_that_fills(tmp_path, monkeypatch):
    """Up front: the packages' estimate against the free space. Mid-install: pip's '[Errno 28]' from a real pip
    copying a wheel bigger than the disk, said as a full disk, with nothing installed and no staging left."""
    from geoclip_qgis.setup import install_space
    from geoclip_qgis.setup.installer import Installation
    from tests.test_installer import DIST, build_wheel

    wheel = build_wheel(tmp_path / "wheels", data=np.random.default_rng(0).bytes(3_000_000))
    monkeypatch.setenv("GEOCLIP_PIP_ARGS", f"--no-index --find-links {wheel.parent}")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with small_disk(tmp_path / "disk", "2m") as disk:
        monkeypatch.setenv("GEOCLIP_DEPS_DIR", str(disk / "deps"))
        lines: list[str] = []
        assert not Installation([DIST], lines.append).run()
        assert lines == [f"Installing these packages needs about 22 MB, 2.1 MB free on the disk holding "
                         f"{disk / 'deps'}. Free some space there, or choose a folder on another disk. Nothing was "
                         "installed."]
        monkeypatch.setattr(install_space, "space_problem", lambda _target, _packages: None)
        lines.clear()
        assert not Installation([DIST], lines.append).run()
        assert lines[-1].startswith(f"The disk holding {disk / 'deps'} is full (")
        assert lines[-1].endswith(": nothing was installed. Free some space there, or choose a folder on another "
                                  "disk.")
        assert list(disk.iterdir()) == []
