"""Extract every user-facing text of the plugin into a Qt translation source (.ts) with pylupdate5.

pylupdate5 finds the ``tr("...")`` calls; it files texts outside a ``self.tr`` under the context "@default",
while ``geoclip_qgis.i18n.tr`` looks them up under its own context, so the file's context is renamed to that
one: a translator's .qm then matches what the plugin asks for at run time. A ``tr`` call whose text is not a
plain string literal (an f-string, a variable) cannot be extracted and is refused.

Usage: ``python -m tools.translations --out i18n/geoclip_qgis.ts`` (needs Debian's pyqt5-dev-tools).
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "geoclip_qgis"
CONTEXT = "GeoCLIP"  # geoclip_qgis.i18n.CONTEXT (not imported: that module needs Qt)


def tr_calls(folder: Path = PLUGIN) -> tuple[set[str], list[str]]:
    """(the literal texts of every ``tr(...)`` call, one line per call whose argument is not a literal)."""
    texts, problems = set(), []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tr" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    texts.add(arg.value)
                else:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: tr() of a {type(arg).__name__}, "
                                    "not a string literal: it cannot be extracted for translation")
    return texts, problems


def extract(out: Path) -> set[str]:
    """Write ``out`` with pylupdate5 and return the source texts it holds."""
    tool = shutil.which("pylupdate5")
    if tool is None:
        raise SystemExit("pylupdate5 is missing: sudo apt-get install pyqt5-dev-tools")
    out.parent.mkdir(parents=True, exist_ok=True)
    sources = [str(p) for p in sorted(PLUGIN.rglob("*.py"))]
    subprocess.run([tool, "-noobsolete", *sources, "-ts", str(out)], check=True, capture_output=True)  # noqa: S603
    tree = ET.parse(out)
    for name in tree.getroot().iter("name"):
        if name.text == "@default":
            name.text = CONTEXT
    tree.write(out, encoding="utf-8", xml_declaration=True)
    return {message.findtext("source") for message in tree.getroot().iter("message")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "i18n" / "geoclip_qgis.ts")
    args = parser.parse_args()
    texts, problems = tr_calls()
    for line in problems:
        print(line)
    found = extract(args.out)
    missing = sorted(texts - found)
    for text in missing:
        print(f"not extracted: {text[:80]!r}")
    print(f"wrote {args.out}: {len(found)} texts in context {CONTEXT}")
    return 1 if problems or missing else 0


if __name__ == "__main__":
    sys.exit(main())
