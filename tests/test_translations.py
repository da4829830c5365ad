"""Every text the plugin shows can be translated: pylupdate5 extracts each ``tr("...")`` into a .ts under the
context ``tr`` asks for, and a translation compiled from that file replaces the text at run time."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

from tools.translations import CONTEXT, extract, tr_calls


def test_every_tr_text_is_a_literal_that_pylupdate_extracts(tmp_path):
    texts, problems = tr_calls()
    assert problems == []
    assert len(texts) > 150  # the dock, the algorithms' labels and help
    found = extract(tmp_path / "geoclip_qgis.ts")
    assert texts <= found
    contexts = {name.text for name in ET.parse(tmp_path / "geoclip_qgis.ts").getroot().iter("name")}
    assert contexts == {CONTEXT}


def test_a_compiled_translation_replaces_the_text_the_plugin_shows(qgis_app, tmp_path):
    from qgis.PyQt.QtCore import QCoreApplication, QTranslator

    from geoclip_qgis.i18n import CONTEXT as RUNTIME_CONTEXT
    from geoclip_qgis.i18n import tr

    assert RUNTIME_CONTEXT == CONTEXT
    ts = tmp_path / "geoclip_qgis_fr.ts"
    extract(ts)
    tree = ET.parse(ts)
    for message in tree.getroot().iter("message"):
        if message.findtext("source") == "Results":
            translation = message.find("translation")
            translation.text, translation.attrib = "Résultats", {}
    tree.write(ts, encoding="utf-8", xml_declaration=True)
    lrelease = shutil.which("lrelease") or "/usr/lib/qt5/bin/lrelease"
    subprocess.run([lrelease, str(ts), "-qm", str(tmp_path / "fr.qm")], check=True, capture_output=True)
    translator = QTranslator()
    assert translator.load(str(tmp_path / "fr.qm"))
    QCoreApplication.installTranslator(translator)
    try:
        assert tr("Results") == "Résultats"
        assert tr("Top-k") == "Top-k"  # untranslated texts stay as written
    finally:
        QCoreApplication.removeTranslator(translator)
