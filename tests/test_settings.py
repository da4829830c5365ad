"""The headless model-choice path (geoclip_qgis.settings): the algorithm's parameter, then the saved
QgsSettings value, then the environment variable, then the default, with a real QgsSettings store.

``conftest.no_saved_model_choices`` clears the saved keys before each test; the ``saved`` fixture here
removes them again after, so nothing written by a test stays on disk for the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qgis.core import QgsProcessingContext, QgsSettings

from geoclip_qgis import settings
from model_utils.errors import WeightsError
from model_utils.model.backbone import DEFAULT_CLIP, clip_source
from model_utils.model.gallery import default_cache_dir
from model_utils.model.weights import find_weights

ENV = {"clip_model": "GEOCLIP_CLIP_MODEL", "weights": "GEOCLIP_WEIGHTS", "cache_dir": "GEOCLIP_CACHE_DIR"}


@pytest.fixture()
def saved(qgis_app):  # noqa: ARG001 - QgsSettings needs the application's organisation and name
    """``saved(key, value)`` stores a setting as the Setup tab does; every key is removed after the test."""

    def save(key: str, value) -> None:
        QgsSettings().setValue(settings.PREFIX + key, value)

    yield save
    for setting in settings.MODEL_SETTINGS:
        setting.forget()


@pytest.fixture()
def no_env(monkeypatch):
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def setting_of(key: str) -> settings.Setting:
    return next(s for s in settings.SETUP_SETTINGS if s.key == key)


def end_to_end(key: str, given: str | None = None) -> str:
    """What the model side ends up using for ``key``: resolve() and then model_utils' env/default."""
    chosen = settings.resolve(setting_of(key), given)
    if key == "clip_model":
        return clip_source(chosen)
    if key == "cache_dir":
        return str(default_cache_dir() if chosen is None else chosen)
    try:  # weights: the folder find_weights settles on is named by its error for a folder that is not there
        return str(find_weights(chosen).folder)
    except WeightsError as exc:
        return str(exc)


@pytest.mark.parametrize("key", [s.key for s in settings.MODEL_SETTINGS])
def test_parameter_beats_saved_setting_and_environment(saved, no_env, key, tmp_path):
    no_env.setenv(ENV[key], str(tmp_path / "from-env"))
    saved(key, str(tmp_path / "from-settings"))
    assert settings.resolve(setting_of(key), str(tmp_path / "from-parameter")) == str(tmp_path / "from-parameter")
    assert settings.resolve(setting_of(key), f"  {tmp_path / 'from-parameter'}\t") == str(tmp_path / "from-parameter")
    assert "from-parameter" in end_to_end(key, str(tmp_path / "from-parameter"))


@pytest.mark.parametrize("key", [s.key for s in settings.MODEL_SETTINGS])
@pytest.mark.parametrize("given", [None, "", "   "])
def test_saved_setting_beats_environment_when_no_parameter(saved, no_env, key, given, tmp_path):
    no_env.setenv(ENV[key], str(tmp_path / "from-env"))
    saved(key, f" {tmp_path / 'from-settings'} ")
    assert setting_of(key).read() == f" {tmp_path / 'from-settings'} "
    assert settings.resolve(setting_of(key), given) == str(tmp_path / "from-settings")
    chosen = end_to_end(key, given)
    assert "from-settings" in chosen and "from-env" not in chosen


@pytest.mark.parametrize("key", [s.key for s in settings.MODEL_SETTINGS])
def test_environment_when_nothing_given_or_saved(saved, no_env, key, tmp_path):  # noqa: ARG001 - cleans up
    no_env.setenv(ENV[key], str(tmp_path / "from-env"))
    assert setting_of(key).read() == ""
    assert settings.resolve(setting_of(key)) is None  # left to model_utils, which reads the environment variable
    assert "from-env" in end_to_end(key)


def test_defaults_when_nothing_given_saved_or_set(saved, no_env, tmp_path):  # noqa: ARG001 - cleans up
    no_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert all(settings.resolve(setting) is None for setting in settings.MODEL_SETTINGS)
    assert end_to_end("clip_model") == DEFAULT_CLIP
    assert Path(end_to_end("cache_dir")) == tmp_path / "xdg" / "geoclip-qgis"
    weights = end_to_end("weights")  # the geoclip wheel, installed in the test venv
    assert Path(weights).parts[-3:] == ("geoclip", "model", "weights")


@pytest.mark.parametrize("key", [s.key for s in settings.MODEL_SETTINGS])
def test_put_strips_and_an_empty_value_forgets(saved, no_env, key, tmp_path):  # noqa: ARG001 - cleans up
    no_env.setenv(ENV[key], str(tmp_path / "from-env"))
    setting_of(key).write(f"  {tmp_path / 'chosen'}  ")
    assert QgsSettings().value(settings.PREFIX + key) == str(tmp_path / "chosen")
    assert settings.resolve(setting_of(key)) == str(tmp_path / "chosen")
    setting_of(key).write("   ")
    assert setting_of(key).read() == ""
    assert settings.resolve(setting_of(key)) is None
    assert "from-env" in end_to_end(key)


def test_a_value_saved_by_another_writer_is_read_as_text(saved):
    saved("cache_dir", 42)  # e.g. an int written by an older version or by hand in QGIS3.ini
    assert settings.CACHE_DIR.read() == "42"
    assert settings.resolve(settings.CACHE_DIR) == "42"
    assert settings.CLIP_MODEL.read() == ""  # nothing saved: the entry's default


def test_unknown_key_is_refused(saved):  # noqa: ARG001 - cleans up
    with pytest.raises(KeyError, match="device"):
        settings.resolve(settings.Setting("device", ""), "cpu")
    with pytest.raises(KeyError):
        settings.resolve(settings.DOCK_FITTED)


def test_nothing_is_written_to_the_environment(saved, no_env, tmp_path):
    before = dict(os.environ)
    for key in (s.key for s in settings.MODEL_SETTINGS):
        saved(key, str(tmp_path / key))
        setting_of(key).write(str(tmp_path / key))
        settings.resolve(setting_of(key))
        settings.resolve(setting_of(key), str(tmp_path / "given"))
    assert dict(os.environ) == before


@pytest.mark.parametrize("algorithm", ["geolocatephotos", "gpsembeddings"])
def test_processing_algorithm_resolves_in_the_same_order(geoclip_provider, saved, no_env, algorithm, tmp_path):
    """What qgis_process runs: the algorithm's model_choices, with no dock ever built."""
    alg = geoclip_provider.algorithm(algorithm)
    assert alg is not None
    context = QgsProcessingContext()
    image_side = alg.parameterDefinition("CLIP_MODEL") is not None
    keys = ("clip_model", "weights") if image_side else ("weights",)

    nothing = alg.model_choices({}, context)
    assert all(nothing[key] is None for key in keys) and nothing["cache_dir"] is None
    assert nothing["device"] == "auto"

    for key in (*keys, "cache_dir"):
        saved(key, str(tmp_path / f"saved-{key}"))
    from_settings = alg.model_choices({}, context)
    assert {key: from_settings[key] for key in (*keys, "cache_dir")} == {
        key: str(tmp_path / f"saved-{key}") for key in (*keys, "cache_dir")}

    params = {"WEIGHTS": str(tmp_path / "param-weights"), "DEVICE": 1}
    if image_side:
        params["CLIP_MODEL"] = str(tmp_path / "param-clip")
    from_params = alg.model_choices(params, context)
    assert from_params["weights"] == str(tmp_path / "param-weights")
    assert from_params["device"] == "cpu"
    assert from_params["cache_dir"] == str(tmp_path / "saved-cache_dir")  # no parameter for it: the setting
    if image_side:
        assert from_params["clip_model"] == str(tmp_path / "param-clip")
        assert from_params["precision"] == "auto"
