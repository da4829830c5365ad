"""Build the ZIP that QGIS's Plugin Manager "Install from ZIP" accepts.

One top folder ``geoclip_qgis/`` holding the plugin, ``metadata.txt``, ``model_utils`` and
``resources`` as real files (the checkout's links are followed), without caches or tests, plus the
licence (``LICENSE``, GPL-2.0-or-later) and the third-party notices (``NOTICE``) from the repository root:
plugins.qgis.org refuses a ZIP without ``LICENSE``, and the MIT notices of what the plugin ports or loads
must travel with it, so no ZIP is built without them.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (make package)
    sys.path.insert(0, str(ROOT))

from model_utils.safe_files import atomic_path  # noqa: E402 - needs ROOT on the path

SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
# (file at the root, what its text must hold): the licence itself and the notices of GeoCLIP's and CLIP's MIT terms
LEGAL_FILES = (("LICENSE", ("GNU GENERAL PUBLIC LICENSE", "Version 2, June 1991")),
               ("NOTICE", ("GPL-2.0-or-later", "Copyright (c) 2024 Vicente Vivanco", "Copyright (c) 2021 OpenAI")))


def iter_files(top: Path):
    """Files under ``top`` with links followed, in a stable order."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix not in SKIP_SUFFIXES:
                yield path


def legal_files(root: Path = ROOT) -> list[Path]:
    """LICENSE and NOTICE at ``root``, each checked to hold what it must; SystemExit naming what is wrong."""
    found = []
    for name, required in LEGAL_FILES:
        path = root / name
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        missing = [r for r in required if r not in text]
        if not text or missing:
            why = "is missing" if not text else f"lacks {', '.join(repr(m) for m in missing)}"
            raise SystemExit(f"make package: {path} {why}; a plugin ZIP is never built without its licence and "
                             "third-party notices (plugins.qgis.org refuses one without LICENSE)")
        found.append(path)
    return found


def build(out: Path) -> Path:
    """Write the ZIP atomically and return its path."""
    legal = legal_files()
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt")
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                "repository", "icon"):
        if not meta.get("general", key, fallback="").strip():
            raise SystemExit(f"metadata.txt: [general] {key} is missing or empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    plugin = ROOT / "geoclip_qgis"
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in iter_files(plugin):
            zf.write(path, Path("geoclip_qgis") / path.relative_to(plugin))
        for path in legal:
            zf.write(path, Path("geoclip_qgis") / path.name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "geoclip_qgis.zip")
    args = parser.parse_args()
    path = build(args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
