"""``make package``: the ZIP that Plugin Manager's "Install from ZIP" accepts, and it loads on its own."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import textwrap
import zipfile

from tools.package import build


def test_zip_layout_and_metadata(tmp_path):
    path = build(tmp_path / "geoclip_qgis.zip")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert {n.split("/")[0] for n in names} == {"geoclip_qgis"}
        required = ["geoclip_qgis/__init__.py", "geoclip_qgis/metadata.txt", "geoclip_qgis/model_utils/__init__.py",
                    "geoclip_qgis/LICENSE", "geoclip_qgis/NOTICE",
                    "geoclip_qgis/resources/icon.svg", "geoclip_qgis/resources/styles/probability_raster.qml",
                    "geoclip_qgis/resources/styles/prediction_points.qml"]
        for name in required:
            assert name in names
        assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
        meta = configparser.ConfigParser()
        meta.read_string(zf.read("geoclip_qgis/metadata.txt").decode())
    general = meta["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert "torch" in general["about"] and "transformers" in general["about"]
    for key in ("name", "description", "version", "author", "email", "repository", "tracker", "homepage",
                "category", "icon", "tags", "hasProcessingProvider", "qgisMaximumVersion"):
        assert general.get(key, "").strip(), key
    assert "supportsqt6" not in general  # deprecated: qgisMaximumVersion=4.99 lists it for QGIS 4


def test_unzipped_plugin_loads_without_the_checkout(tmp_path):
    path = build(tmp_path / "geoclip_qgis.zip")
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(plugins)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(plugins)!r})
        from qgis.core import QgsApplication
        app = QgsApplication([], False); app.initQgis()
        from qgis.PyQt.QtWidgets import QMainWindow
        class Iface:
            def __init__(self): self.win = QMainWindow()
            def mainWindow(self): return self.win
            def __getattr__(self, name): return lambda *a, **k: None
        import geoclip_qgis
        plugin = geoclip_qgis.classFactory(Iface()); plugin.initGui()
        import model_utils
        algs = sorted(a.id() for a in plugin.provider.algorithms())
        plugin.unload()
        print("FROM=" + geoclip_qgis.__file__ + "|" + model_utils.__file__)
        print("ALGS=" + ",".join(algs))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the checkout is not importable
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=env)
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert "FROM" in lines, out.stderr[-2000:]
    assert all(p.startswith(str(plugins)) for p in lines["FROM"].split("|"))
    assert "geoclip:geolocatephotos" in lines["ALGS"] and "geoclip:gpsembeddings" in lines["ALGS"]


def test_a_foreign_model_utils_is_refused_with_a_message(tmp_path):
    """Another plugin's ``model_utils`` earlier on sys.path would be imported in place of ours: the plugin
    names both and refuses (a run reports that message) instead of calling into foreign code."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    foreign = tmp_path / "other_plugin"
    (foreign / "model_utils").mkdir(parents=True)
    (foreign / "model_utils" / "__init__.py").write_text("WHO = 'someone else'\n")
    code = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(foreign)!r}, {str(root)!r}]
        from geoclip_qgis.paths import ForeignModelUtils, ensure_model_utils_importable
        try:
            ensure_model_utils_importable()
        except ForeignModelUtils as exc:
            print("REFUSED=" + str(exc))
        else:
            print("ACCEPTED")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    refused = done.stdout.split("REFUSED=", 1)[-1]
    assert "REFUSED=" in done.stdout and str(foreign / "model_utils" / "__init__.py") in refused
    assert str(root / "model_utils") in refused and "remove or rename" in refused

    ours = code.replace(f"{str(foreign)!r}, ", "")  # only our checkout: accepted
    done = subprocess.run([sys.executable, "-c", ours], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "ACCEPTED", done.stderr
