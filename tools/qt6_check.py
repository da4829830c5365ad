"""Lint rule set: fail on Qt5-only idioms so the plugin stays ready for QGIS 4 (Qt6).

ruff cannot know which names are Qt enums, so this check imports the Qt and QGIS classes the code
names and asks them: an enum member reached through its owner class (``Qt.UTC``,
``QgsProcessing.TypeVectorAnyGeometry``) is unscoped and gone in PyQt6. The version-dependent
spellings live in ``geoclip_qgis/compat.py``, the only file exempt from these rules.

Then every Qt class, enum member and method the plugin (``geoclip_qgis``, compat.py included) names through
``qgis.PyQt`` is resolved in PyQt6 itself, in a child process (``tools/qt6_resolve.py``): QT6200 for each
one PyQt6 lacks. Without PyQt6 that is a finding too (QT6201), except where ``GEOCLIP_PYQT6_OPTIONAL=1`` says
PyQt6 cannot be had (the QGIS 3.40/3.44 chroots, if pip cannot install it there): then it says so and skips.
metadata.txt must list the plugin for QGIS 4 (``qgisMaximumVersion=4.99``) without the deprecated
``supportsQt6``: that claim rests on this check passing.

Usage: ``python tools/qt6_check.py [paths...]``; exit 1 and one line per finding when any is found.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import enum
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = ("geoclip_qgis", "tests", "tools")
EXEMPT = {ROOT / "geoclip_qgis" / "compat.py", ROOT / "tools" / "qt6_resolve.py"}  # the PyQt6 side itself
MOVED_TO_QTGUI = {"QAction", "QActionGroup", "QShortcut"}
QT_MODULE_PREFIXES = ("qgis.", "PyQt5.")


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        try:
            where = self.path.relative_to(ROOT)
        except ValueError:
            where = self.path
        return f"{where}:{self.line}: {self.rule} {self.message}"


def _is_enum_member(value: object) -> bool:
    """True for a sip enum value (PyQt5) or a Python enum member (QGIS >= 3.36 scoped enums)."""
    if isinstance(value, enum.Enum):
        return True
    return isinstance(value, int) and type(type(value)).__name__ == "enumtype"


class _Checker(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.bindings: dict[str, object] = {}
        self.findings: list[Finding] = []

    def _add(self, node: ast.AST, rule: str, message: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), rule, message))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802 - ast API
        module = node.module or ""
        if module.startswith("PyQt5") or module.startswith("PyQt6"):
            self._add(node, "QT6001", f"import from {module}: use qgis.PyQt (it maps to the Qt of the running QGIS)")
        if module.endswith("QtWidgets"):
            for alias in node.names:
                if alias.name in MOVED_TO_QTGUI:
                    self._add(node, "QT6002", f"{alias.name} from QtWidgets: it lives in QtGui in Qt6; "
                                              "import it from geoclip_qgis.compat")
        if module.startswith(QT_MODULE_PREFIXES) or module == "qgis":
            try:
                imported = importlib.import_module(module)
            except Exception:  # noqa: BLE001 - a module this QGIS lacks is not this rule's business
                imported = None
            for alias in node.names:
                value = getattr(imported, alias.name, None) if imported is not None else None
                if value is not None:
                    self.bindings[alias.asname or alias.name] = value
        self.generic_visit(node)

    def _resolve(self, node: ast.AST) -> object | None:
        if isinstance(node, ast.Name):
            return self.bindings.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self._resolve(node.value)
            return getattr(owner, node.attr, None) if owner is not None else None
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802 - ast API
        owner = self._resolve(node.value)
        if owner is not None and isinstance(owner, type):
            value = getattr(owner, node.attr, None)
            owner_name = getattr(owner, "__name__", "?")
            if owner_name == "QVariant" and (_is_enum_member(value) or node.attr == "Type"):
                self._add(node, "QT6003", f"QVariant.{node.attr}: QVariant type codes are gone in Qt6; "
                                          "use geoclip_qgis.compat.FieldType")
            elif _is_enum_member(value) and type(value) is not owner:
                scoped = type(value).__name__
                hint = (f"{owner_name}.{scoped}.{node.attr}" if owner.__module__.startswith("PyQt")
                        else "the scoped name (Qgis.* where this QGIS has it, else geoclip_qgis.compat)")
                self._add(node, "QT6004", f"unscoped enum {owner_name}.{node.attr}: use {hint}")
            elif isinstance(owner, enum.EnumMeta) and isinstance(node.value, ast.Attribute):
                self._check_moved_to_qgis(node, owner)
        self.generic_visit(node)

    def _check_moved_to_qgis(self, node: ast.Attribute, enum_type: type) -> None:
        """``QgsX.Enum.Member`` where that enum now lives in ``Qgis`` (seen only on QGIS >= 3.30)."""
        holder = self._resolve(node.value.value)  # type: ignore[attr-defined]
        qgis_core = sys.modules.get("qgis.core")
        qgis_class = getattr(qgis_core, "Qgis", None)
        if holder is None or holder is qgis_class or qgis_class is None:
            return
        if getattr(qgis_class, enum_type.__name__, None) is enum_type:
            self._add(node, "QT6006", f"{getattr(holder, '__name__', '?')}.{node.value.attr}.{node.attr}: "  # type: ignore[attr-defined]
                                      f"moved to Qgis.{enum_type.__name__}; use geoclip_qgis.compat")

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802 - ast API
        if isinstance(node.func, ast.Attribute) and node.func.attr == "exec_":
            self._add(node, "QT6005", "exec_(): PyQt6 has only exec()")
        self.generic_visit(node)


def check_file(path: Path) -> list[Finding]:
    checker = _Checker(path)
    checker.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return checker.findings


QGIS4_MAXIMUM = "4.99"


def check_metadata(metadata: Path) -> list[Finding]:
    """metadata.txt must list the plugin for QGIS 4 the way plugins.qgis.org reads it and name a minimum."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys as written: supportsQt6, not supportsqt6
    parser.read(metadata, encoding="utf-8")
    general = parser["general"] if parser.has_section("general") else {}
    findings = []
    if "supportsQt6" in general:
        findings.append(Finding(metadata, 0, "QT6100", "supportsQt6 is deprecated and ignored by plugins.qgis.org "
                                                       f"(its upload page warns): remove it; qgisMaximumVersion="
                                                       f"{QGIS4_MAXIMUM} is what lists the plugin for QGIS 4"))
    if not general.get("qgisMinimumVersion"):
        findings.append(Finding(metadata, 0, "QT6101", "qgisMinimumVersion missing"))
    if general.get("qgisMaximumVersion", "").strip() != QGIS4_MAXIMUM:
        findings.append(Finding(metadata, 0, "QT6102", f"qgisMaximumVersion={QGIS4_MAXIMUM} missing (without it the "
                                                       "site stores 3.99 and QGIS 4 users cannot install the plugin)"))
    return findings


def check_pyqt6(files: list[Path]) -> tuple[list[Finding], str]:
    """(findings, a summary line): each Qt name of ``files`` reached through qgis.PyQt, resolved in PyQt6."""
    import os

    from tools.qt6_resolve import check_in_pyqt6, collect

    refs = collect(files)
    try:
        missing, version = check_in_pyqt6(refs)
    except ImportError as exc:
        if os.environ.get("GEOCLIP_PYQT6_OPTIONAL") == "1":
            return [], f"PyQt6 resolution SKIPPED here: {exc} (GEOCLIP_PYQT6_OPTIONAL=1; never skipped on the host)"
        return [Finding(ROOT, 0, "QT6201", f"{exc}: `make install` installs PyQt6 into the venv")], ""
    findings = [Finding(Path(r.path), r.line, "QT6200", f"{r.module}.{r.name} does not exist in {version}")
                for r in missing]
    return findings, f"{len({(r.module, r.name) for r in refs})} Qt names of the plugin resolved against {version}"


def python_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        files += [p for p in candidates if p.resolve() not in EXEMPT and "_artifacts" not in p.parts]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or [ROOT / p for p in DEFAULT_PATHS]
    findings = [f for p in python_files(paths) for f in check_file(p)]
    summary = ""
    if not args.paths:
        findings += check_metadata(ROOT / "metadata.txt")
        plugin_files = sorted((ROOT / "geoclip_qgis").rglob("*.py"))
        qt6, summary = check_pyqt6(plugin_files)
        findings += qt6
    for finding in findings:
        print(finding)
    if summary:
        print(f"qt6_check: {summary}")
    print(f"qt6_check: {len(findings)} finding(s) in {len(python_files(paths))} files")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
