"""The dock's tabs and the Processing algorithms speak one vocabulary: every key a tab sends is a parameter of its
algorithm, with a value that parameter accepts, and a tab's untouched fields start at the algorithm's defaults."""

from __future__ import annotations

import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProject,
    QgsVectorLayer,
)

from geoclip_qgis import settings
from geoclip_qgis.compat import FLAG_OPTIONAL, NUMBER_DOUBLE
from geoclip_qgis.processing import definitions as d

# what kind of parameter a value of each Python type may fill (None: any optional parameter)
ACCEPTS = {bool: (QgsProcessingParameterBoolean,), int: (QgsProcessingParameterNumber, QgsProcessingParameterEnum),
           float: (QgsProcessingParameterNumber,), list: (QgsProcessingParameterMultipleLayers,)}


def _sent(tab) -> dict:
    """What the tab's Run button hands to Processing."""
    algorithm = QgsApplication.processingRegistry().algorithmById(tab.ALGORITHM)
    return tab.controls.with_model_choices(algorithm, tab.parameters())


def test_every_key_a_tab_sends_is_a_parameter_of_its_algorithm_with_a_matching_type(loaded_plugin):
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    registry = QgsApplication.processingRegistry()
    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=photo:string", "photos", "memory")
    QgsProject.instance().addMapLayer(layer)
    dock = loaded_plugin.dock
    dock.geolocate_tab.layer.setLayer(layer)  # the optional layer inputs too, as a user fills them
    dock.embeddings_tab.layer.setLayer(layer)
    for tab in dock.task_tabs():
        algorithm = registry.algorithmById(tab.ALGORITHM)
        assert algorithm is not None, tab.ALGORITHM
        for key, value in _sent(tab).items():
            definition = algorithm.parameterDefinition(key)
            assert definition is not None, f"{tab.ALGORITHM} has no parameter {key} (sent by {type(tab).__name__})"
            if value is None:
                assert definition.flags() & FLAG_OPTIONAL, f"{key} is sent empty but is not optional"
                continue
            kinds = ACCEPTS.get(type(value))
            if kinds is not None:
                assert isinstance(definition, kinds), f"{key}: a {type(value).__name__} for a {definition.type()}"
            if isinstance(value, float):
                assert definition.dataType() == NUMBER_DOUBLE, key
            assert definition.checkValueIsAcceptable(value, context), f"{tab.ALGORITHM} refuses {key}={value!r}"


@pytest.fixture()
def fresh_forms(qgis_app):  # noqa: ARG001
    """No remembered dock inputs: each field starts at its default."""
    remembered = [getattr(settings, name) for name in dir(settings) if isinstance(getattr(settings, name),
                                                                                   settings.Setting)]
    for tab in ("geolocate", "text"):
        remembered += list(vars(settings.results_settings(tab)).values())
    for setting in remembered:
        setting.forget()
    yield
    for setting in remembered:
        setting.forget()


def test_an_untouched_tab_sends_the_algorithms_defaults(fresh_forms, loaded_plugin):  # noqa: ARG001
    registry = QgsApplication.processingRegistry()
    dock = loaded_plugin.dock
    for tab in (dock.geolocate_tab, dock.text_tab):
        algorithm = registry.algorithmById(tab.ALGORITHM)
        sent = _sent(tab)
        for key in (d.TOP_K, d.CELL_SIZE, d.CREDIBLE_LEVELS, d.DENSITY, d.GALLERY):
            assert sent[key] == algorithm.parameterDefinition(key).defaultValue(), (tab.ALGORITHM, key)
    embeddings = registry.algorithmById(dock.embeddings_tab.ALGORITHM)
    sent = _sent(dock.embeddings_tab)
    for key in (d.NORMALIZE, d.PCA_COMPONENTS, d.FORMAT, d.LAYOUT):
        assert sent[key] == embeddings.parameterDefinition(key).defaultValue(), key


def test_constants_are_named_for_the_text_they_hold():
    keys = {name: value for name, value in vars(d).items() if name.isupper() and isinstance(value, str)
            and not name.startswith("DEFAULT")}
    renamed = {name: value for name, value in keys.items() if name != value}
    # those that cannot be: a Python name for 'C', the Ray output that shares the text of a switch, and the
    # cluster token's parameter (a constant named TOKEN holding a string reads as a password to a security scan)
    assert renamed == {"REGULARIZATION_C": "C", "DENSITY_RASTER": "DENSITY", "CLUSTER_AUTH": "TOKEN"}
