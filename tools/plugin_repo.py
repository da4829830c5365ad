"""``make repo``: a QGIS plugin repository folder an organisation can host as its own.

The folder holds the plugin ZIP (``geoclip_qgis.<version>.zip``, the name plugins.qgis.org gives its
downloads; QGIS takes the plugin's id from it), its icon, and ``plugins.xml`` in the format plugins.qgis.org
serves: one ``<pyqgis_plugin>`` per plugin with the metadata Plugin Manager reads (versions, QGIS range,
links, experimental flag, download URL). Serve the folder over http(s) (or use it as a ``file://`` URL) and add
``<base URL>/plugins.xml`` in *Plugins > Manage and Install Plugins > Settings > Add...*. Building a newer
version into the same folder replaces the entry, so QGIS offers it as an upgrade; earlier ZIPs stay
downloadable.

Usage: ``python tools/plugin_repo.py --out dist/repo [--url https://intranet.example/qgis] [--zip Z]``.
"""

from __future__ import annotations

import argparse
import configparser
import shutil
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree as ET  # noqa: N817 - the usual name

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from model_utils.safe_files import atomic_path  # noqa: E402 - needs ROOT on the path

PLUGIN_ID = "geoclip_qgis"
# plugins.xml element -> metadata.txt key (the texts Plugin Manager shows)
TEXT_FIELDS = {"description": "description", "about": "about", "version": "version", "homepage": "homepage",
               "author_name": "author", "author_email": "email", "tracker": "tracker", "repository": "repository",
               "tags": "tags", "changelog": "changelog", "category": "category"}


def zip_metadata(zip_path: Path) -> dict[str, str]:
    """The [general] section of the ZIP's own metadata.txt: the entry describes exactly what it serves."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    with zipfile.ZipFile(zip_path) as zf:
        parser.read_string(zf.read(f"{PLUGIN_ID}/metadata.txt").decode("utf-8"))
        meta = dict(parser["general"])
        icon = meta.get("icon", "").removeprefix("./")
        meta["_icon_bytes"] = zf.read(f"{PLUGIN_ID}/{icon}") if icon else b""  # type: ignore[assignment]
    return meta


def _flag(value: str) -> str:
    return "True" if value.strip().lower() in ("true", "yes", "1") else "False"


def plugin_entry(meta: dict, file_name: str, base_url: str, icon_name: str) -> ET.Element:
    """One ``<pyqgis_plugin>`` element as plugins.qgis.org writes it."""
    version = meta["version"].strip()
    entry = ET.Element("pyqgis_plugin", name=meta["name"].strip(), version=version, plugin_id=PLUGIN_ID)
    for tag, key in TEXT_FIELDS.items():
        ET.SubElement(entry, tag).text = meta.get(key, "").strip()
    ET.SubElement(entry, "qgis_minimum_version").text = meta["qgisMinimumVersion"].strip()
    ET.SubElement(entry, "qgis_maximum_version").text = meta.get("qgisMaximumVersion", "").strip()
    ET.SubElement(entry, "file_name").text = file_name
    ET.SubElement(entry, "download_url").text = f"{base_url}/{file_name}"
    ET.SubElement(entry, "icon").text = f"{base_url}/{icon_name}" if icon_name else ""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    for tag, text in (("trusted", "False"), ("experimental", _flag(meta.get("experimental", "False"))),
                      ("deprecated", _flag(meta.get("deprecated", "False"))), ("server", _flag(meta.get("server", ""))),
                      ("create_date", stamp), ("update_date", stamp), ("downloads", "0"), ("average_vote", "0"),
                      ("rating_votes", "0"), ("external_dependencies", ""), ("plugin_dependencies", "")):
        ET.SubElement(entry, tag).text = text
    return entry


def build_repo(out: Path, base_url: str | None = None, zip_path: Path | None = None) -> Path:
    """Write (or update) the repository in ``out`` with ``zip_path`` (default: a fresh ``make package`` ZIP);
    ``base_url`` is where ``out`` will be served (default: its own ``file://`` URL). Returns plugins.xml."""
    out.mkdir(parents=True, exist_ok=True)
    base = (base_url or out.resolve().as_uri()).rstrip("/")
    if zip_path is None:
        from tools.package import build

        zip_path = build(out / f".{PLUGIN_ID}.building.zip")
    meta = zip_metadata(zip_path)
    file_name = f"{PLUGIN_ID}.{meta['version'].strip()}.zip"
    with atomic_path(out / file_name) as tmp:
        shutil.copyfile(zip_path, tmp)
    if zip_path.parent == out and zip_path.name.startswith("."):
        zip_path.unlink()
    icon_bytes: bytes = meta.pop("_icon_bytes")  # type: ignore[assignment]
    icon_name = f"{PLUGIN_ID}{Path(meta.get('icon', '')).suffix}" if icon_bytes else ""
    if icon_name:
        (out / icon_name).write_bytes(icon_bytes)
    root = ET.Element("plugins")
    root.append(plugin_entry(meta, file_name, base, icon_name))
    ET.indent(root)
    xml = out / "plugins.xml"
    with atomic_path(xml) as tmp:
        tmp.write_bytes(b"<?xml version='1.0' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="utf-8") + b"\n")
    return xml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "repo")
    parser.add_argument("--url", help="the URL the folder is served at (default: its file:// URL)")
    parser.add_argument("--zip", type=Path, help="a built plugin ZIP (default: build one now)")
    args = parser.parse_args(argv)
    xml = build_repo(args.out, args.url, args.zip)
    served = (args.url or args.out.resolve().as_uri()).rstrip("/")
    print(f"wrote {xml} and the ZIP beside it; in QGIS: Plugins > Manage and Install Plugins > Settings > "
          f"Add... with URL {served}/plugins.xml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
