"""Release tooling: the licence travels in every ZIP, CHANGELOG and metadata agree, ``make release-check`` applies
plugins.qgis.org's validator rules and scans (and fails a ZIP the site would refuse), ``make repo`` writes the
format Plugin Manager reads."""

from __future__ import annotations

import configparser
import re
import zipfile
from pathlib import Path

import pytest

from tools.package import build, legal_files
from tools.release_check import check
from tools.security_scan import scan_zip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def good_zip(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("release") / "geoclip_qgis.zip")


def _metadata() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]


def test_the_latest_changelog_entry_is_metadatas_changelog_and_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## (\S+)", text, flags=re.M)
    newest = text.split(f"## {versions[0]}", 1)[1].split("\n## ", 1)[0]
    bullets = [line.strip() for line in newest.strip().splitlines() if line.strip()]
    meta = _metadata()
    assert meta["version"] == versions[0]
    assert meta["changelog"].strip().splitlines() == [versions[0], *bullets]
    numbers = [tuple(int(n) for n in v.split(".")) for v in versions]
    assert numbers == sorted(numbers, reverse=True)  # newest first


def test_no_zip_without_its_licence_and_notices(tmp_path):
    with pytest.raises(SystemExit, match=r"LICENSE is missing; a plugin ZIP is never built without"):
        legal_files(tmp_path)
    (tmp_path / "LICENSE").write_text("MIT License\n")
    with pytest.raises(SystemExit, match="LICENSE lacks 'GNU GENERAL PUBLIC LICENSE'"):
        legal_files(tmp_path)
    (tmp_path / "LICENSE").write_text((ROOT / "LICENSE").read_text())
    (tmp_path / "NOTICE").write_text("GPL-2.0-or-later\nCopyright (c) 2021 OpenAI\n")  # GeoCLIP's notice left out
    with pytest.raises(SystemExit, match="NOTICE lacks 'Copyright \\(c\\) 2024 Vicente Vivanco'"):
        legal_files(tmp_path)
    licence = (ROOT / "LICENSE").read_text()  # the GPLv2 text itself (Debian 12's copy; 13's has FSF's new address)
    assert licence.lstrip().startswith("GNU GENERAL PUBLIC LICENSE") and "Version 2, June 1991" in licence
    assert "either version 2 of the License, or" in licence and "(at your option) any later version" in licence


def test_the_built_zip_passes_every_rule_with_the_links_left_to_the_maintainers(good_zip):
    result = check(good_zip)
    assert result.failures == []
    assert any(line.startswith("security scan: ") and " 0 blocking finding(s)" in line for line in result.passed)
    assert len(result.remaining) == 1 and "placeholder links in metadata.txt" in result.remaining[0]
    for key in ("tracker=", "repository=", "homepage=", "email="):
        assert key in result.remaining[0]


def _rewrite(source: Path, out: Path, change) -> Path:
    """A copy of ``source`` with ``change(name, data)`` applied to each member (None drops it; a list adds)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            for new_name, data in change(name, zin.read(name)) or []:
                zout.writestr(new_name, data)
    return out


@pytest.mark.parametrize(("change", "failed_rule"), [
    (lambda n, d: [(n, d)] + ([("geoclip_qgis/__pycache__/plugin.cpython-311.pyc", b"x")]
                              if n.endswith("plugin.py") else []), "no .pyc files"),
    (lambda n, d: [] if n == "geoclip_qgis/LICENSE" else [(n, d)], "geoclip_qgis/LICENSE present"),
    (lambda n, d: [(n, d)] + ([("README.md", b"x")] if n.endswith("plugin.py") else []), "one top folder"),
    (lambda n, d: [(n.replace("geoclip_qgis/", "geoclip-qgis/", 1), d)], "is a Python identifier"),
    (lambda n, d: [(n, d.replace(b"author=GeoCLIP", b"author=GeoCLIP/QGIS") if n.endswith("metadata.txt") else d)],
     "author has no slash"),
    (lambda n, d: [(n, re.sub(rb"\ntracker=[^\n]*", b"", d) if n.endswith("metadata.txt") else d)],
     "required metadata present"),
    (lambda n, d: [(n, b"not an svg" if n.endswith("icon.svg") else d)], "icon resources/icon.svg loads"),
    (lambda n, d: [(n, d + b"\napi_password = 'hunter2-not-a-real-one'\n" if n.endswith("plugin.py") else d)],
     "Bandit B105 (mandatory)"),
])
def test_a_zip_the_site_would_refuse_fails_the_check(good_zip, tmp_path, change, failed_rule):
    result = check(_rewrite(good_zip, tmp_path / "bad.zip", change))
    assert any(failed_rule in line for line in result.failures), result.failures


def test_the_scans_block_secrets_and_bare_nosec_but_not_skippable_rules(good_zip, tmp_path):
    key = "AKIA" + "IOSFODNN7" + "EXAMPLE"  # AWS's documented example key id, built so this file holds none

    def change(name, data):
        if name.endswith("geoclip_qgis/settings.py"):
            data += (f"\nAWS_ID = '{key}'\n"
                     "value = eval('1')  # nosec\n"  # B307 silenced without a rule and a reason
                     "query = 'SELECT * FROM t WHERE a = ' + str(value)  # nosec B608 - a test of a named nosec\n"
                     ).encode()
        return [(name, data)]

    report = scan_zip(_rewrite(good_zip, tmp_path / "bad.zip", change))
    blocking = "\n".join(report.blocking)
    assert "detect-secrets AWS Access Key" in blocking
    assert blocking.count("'# nosec' must name its rule") == 1  # the bare one; the named one is accepted
    assert sorted(report.skippable) == ["B404", "B603", "B608"]  # reported, never blocking


def test_make_repo_writes_what_plugin_manager_reads(tmp_path, good_zip):
    from xml.etree import ElementTree as ET  # noqa: N817

    from tools.plugin_repo import build_repo

    xml = build_repo(tmp_path / "repo", "http://127.0.0.1:8000/qgis", good_zip)
    entry = ET.parse(xml).getroot().find("pyqgis_plugin")
    meta = _metadata()
    assert entry.get("version") == meta["version"] and entry.get("name") == meta["name"]
    assert entry.findtext("file_name") == f"geoclip_qgis.{meta['version']}.zip"  # QGIS takes the plugin id from it
    assert entry.findtext("download_url") == f"http://127.0.0.1:8000/qgis/geoclip_qgis.{meta['version']}.zip"
    assert entry.findtext("qgis_maximum_version") == "4.99"
    assert (tmp_path / "repo" / entry.findtext("file_name")).read_bytes() == good_zip.read_bytes()
    assert entry.findtext("experimental") == ("True" if meta["experimental"] == "True" else "False")
