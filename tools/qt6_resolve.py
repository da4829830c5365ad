"""Resolve every Qt name the plugin reaches through ``qgis.PyQt`` in PyQt6 itself (the QGIS 4 check of make lint).

Two halves, never in one process (PyQt5 and PyQt6 must not meet in one interpreter):

- here, beside the running QGIS (PyQt5), ``collect`` walks the plugin's code and lists each Qt class, enum
  member and method it names through ``qgis.PyQt``: an imported name, a dotted chain on it
  (``Qt.DockWidgetArea.RightDockWidgetArea``, ``QTimer.singleShot``), a method on a variable or attribute built
  from a Qt class (``label = QLabel(); label.setWordWrap``) and one a Qt subclass calls on itself
  (``self.setWidget`` in a ``QDockWidget``, or in a ``QgsDockWidget``: a QGIS class's Qt ancestor). Only what
  resolves in PyQt5 is listed, so a name the code builds itself is never taken for Qt's.
- ``python tools/qt6_resolve.py`` (stdin: that list as JSON) imports PyQt6 and answers which of them do not
  resolve there: unscoped enums, ``exec_``, ``QAction`` in ``QtWidgets``, ``QRegExp``, ``QDesktopWidget``...

A name bound in a ``try`` whose ``except ImportError`` binds it another way (compat.py's ``QAction``) counts
as resolved when one of the ways resolves. The branch of ``if QGIS_VERSION_INT >= N`` (N at most 4.0's) that
only a QGIS older than N runs is not QGIS 4's code and is left out.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

QT_PACKAGE = "qgis.PyQt"
QGIS4_VERSION_INT = 40000  # QGIS 4.0, the first on Qt6


@dataclass(frozen=True)
class Reference:
    path: str  # the file
    line: int
    module: str  # "QtWidgets"
    name: str  # "QDockWidget.setWidget"
    group: str = ""  # alternatives: resolved when any reference of the same group resolves


def _resolve_chain(root: object, parts: list[str]) -> int:
    """How many of ``parts`` resolve one after another from ``root`` (getattr)."""
    value, done = root, 0
    for part in parts:
        try:
            value = getattr(value, part)
        except AttributeError:
            break
        done += 1
    return done


class _Collector(ast.NodeVisitor):
    """References of one file, resolved against the PyQt that ``qgis.PyQt`` gives here (PyQt5)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bound: dict[str, tuple[str, str]] = {}  # local name -> (QtModule, class or object name)
        self.instances: dict[str, tuple[str, str]] = {}  # "label" / "self.label" -> (QtModule, class)
        self.qt_bases: list[tuple[str, str]] = []  # the enclosing class's Qt bases
        self.own_names: set[str] = set()  # names the enclosing class defines itself
        self.qgis_bases: dict[str, tuple[str, str]] = {}  # a QGIS class -> its nearest Qt ancestor
        self.refs: list[Reference] = []
        self._group = ""

    # ------------------------------------------------------------------ PyQt5 side
    @staticmethod
    def _module(name: str):
        import importlib

        try:
            return importlib.import_module(f"{QT_PACKAGE}.{name}")
        except ImportError:
            return None

    def _add(self, node: ast.AST, module: str, dotted: str) -> None:
        """List ``module.dotted`` cut to the part that resolves in PyQt5 (nothing if not even its head does); an
        alternative (in a ``try`` that catches ImportError) is listed whole, as PyQt5 may lack it."""
        parts = dotted.split(".")
        found = len(parts) if self._group else _resolve_chain(self._module(module), parts)
        if found:
            self.refs.append(Reference(str(self.path), getattr(node, "lineno", 0), module, ".".join(parts[:found]),
                                       self._group))

    # ------------------------------------------------------------------ imports and alternatives
    def visit_Try(self, node: ast.Try) -> None:  # noqa: N802 - ast API
        catches_import = any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                             for h in node.handlers)
        if not catches_import:
            return self.generic_visit(node)
        self._group = f"{self.path}:{node.lineno}"
        for child in [*node.body, *(stmt for h in node.handlers for stmt in h.body)]:
            self.visit(child)
        self._group = ""
        for child in [*node.orelse, *node.finalbody]:
            self.visit(child)
        return None

    def visit_If(self, node: ast.If) -> None:  # noqa: N802 - ast API
        """Leave out the branch only a QGIS older than 4.0 runs (``if QGIS_VERSION_INT >= 33800: ... else: ...``)."""
        self.visit(node.test)
        older_only = _older_qgis_branch(node.test)
        for branch, stmts in (("body", node.body), ("orelse", node.orelse)):
            if branch != older_only:
                for child in stmts:
                    self.visit(child)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802 - ast API
        module = node.module or ""
        if module in ("qgis.gui", "qgis.core") and node.level == 0:
            for alias in node.names:
                ancestor = _qt_ancestor(module, alias.name)
                if ancestor is not None:
                    self.qgis_bases[alias.asname or alias.name] = ancestor
        if module.startswith(QT_PACKAGE + ".") and node.level == 0:
            qt_module = module[len(QT_PACKAGE) + 1:]
            for alias in node.names:
                self.bound[alias.asname or alias.name] = (qt_module, alias.name)
                self._add(node, qt_module, alias.name)

    # ------------------------------------------------------------------ classes, instances, chains
    def visit_ClassDef(self, node: ast.ClassDef) -> None:  # noqa: N802 - ast API
        saved = self.qt_bases, self.own_names, dict(self.instances)
        names = [b.id for b in node.bases if isinstance(b, ast.Name)]
        known = {**self.qgis_bases, **self.bound}
        self.qt_bases = [known[n] for n in names if n in known]
        self.own_names = {n.name for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.own_names |= {t.attr for n in ast.walk(node) if isinstance(n, ast.Assign) for t in n.targets
                           if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
        self.generic_visit(node)
        self.qt_bases, self.own_names, self.instances = saved

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # noqa: N802 - ast API
        saved = {k: v for k, v in self.instances.items() if k.startswith("self.")}
        self.generic_visit(node)
        self.instances = {**saved, **{k: v for k, v in self.instances.items() if k.startswith("self.")}}

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 - ast API

    def visit_Assign(self, node: ast.Assign) -> None:  # noqa: N802 - ast API
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in self.bound:
            for target in node.targets:
                key = _key(target)
                if key:
                    self.instances[key] = self.bound[value.func.id]
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802 - ast API
        chain = _chain(node)
        if chain is None:
            return self.generic_visit(node)
        head, rest = chain
        if head in self.bound:
            module, name = self.bound[head]
            self._add(node, module, ".".join([name, *rest]))
        elif head in self.instances:
            module, name = self.instances[head]
            self._add(node, module, ".".join([name, *rest]))
        elif head == "self" and rest and rest[0] not in self.own_names:
            for module, name in self.qt_bases:
                self._add(node, module, ".".join([name, *rest]))
        return None  # the whole chain is one reference


def _qt_ancestor(module: str, name: str) -> tuple[str, str] | None:
    """(QtModule, class) of the first Qt class in the ancestry of QGIS's ``module.name`` (QgsDockWidget ->
    QtWidgets.QDockWidget), or None."""
    import importlib

    cls = getattr(importlib.import_module(module), name, None)
    for base in getattr(cls, "__mro__", ())[1:]:
        qt_module = getattr(base, "__module__", "")
        if qt_module.startswith(("PyQt5.", "PyQt6.")):
            return qt_module.split(".", 1)[1], base.__name__
    return None


def _older_qgis_branch(test: ast.AST) -> str | None:
    """"orelse" for ``QGIS_VERSION_INT >= N`` / ``> N``, "body" for ``< N`` / ``<= N`` (N <= 4.0), else None."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.comparators[0], ast.Constant)):
        return None
    left, limit = test.left, test.comparators[0].value
    name = left.id if isinstance(left, ast.Name) else left.attr if isinstance(left, ast.Attribute) else ""
    if name != "QGIS_VERSION_INT" or not isinstance(limit, int) or limit > QGIS4_VERSION_INT:
        return None
    if isinstance(test.ops[0], (ast.GtE, ast.Gt)):
        return "orelse"
    return "body" if isinstance(test.ops[0], (ast.Lt, ast.LtE)) else None


def _key(target: ast.AST) -> str | None:
    """``label`` or ``self.label`` for an assignment target, else None."""
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return f"self.{target.attr}"
    return None


def _chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """(head, attributes) of ``a.b.c`` with ``self.x`` kept as one head when it names a known instance."""
    parts: list[str] = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        parts.insert(0, current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return current.id, parts


class _InstanceAwareCollector(_Collector):
    """``self.label.setText``: the head is ``self.label`` when that attribute was built from a Qt class."""

    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802 - ast API
        chain = _chain(node)
        if chain is not None and chain[0] == "self" and len(chain[1]) >= 2 and f"self.{chain[1][0]}" in self.instances:
            module, name = self.instances[f"self.{chain[1][0]}"]
            self._add(node, module, ".".join([name, *chain[1][1:]]))
            return None
        return super().visit_Attribute(node)


def collect(files: list[Path]) -> list[Reference]:
    """Every Qt reference of ``files`` that resolves in the PyQt of this process."""
    refs: list[Reference] = []
    for path in files:
        collector = _InstanceAwareCollector(path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        refs += collector.refs
    return refs


# ---------------------------------------------------------------------- the PyQt6 side
def check_in_pyqt6(refs: list[Reference], python: str = sys.executable) -> tuple[list[Reference], str]:
    """(the references PyQt6 lacks, PyQt6's version line), asked in a child process; ImportError if it has none."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run([python, str(Path(__file__).resolve())], input=json.dumps([asdict(r) for r in refs]),
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    if done.returncode == 3:
        raise ImportError(done.stderr.strip() or "PyQt6 is not installed")
    if done.returncode != 0:
        raise RuntimeError(f"the PyQt6 resolver failed:\n{done.stderr[-2000:]}")
    answer = json.loads(done.stdout)
    return [Reference(**r) for r in answer["missing"]], answer["version"]


def _resolve_all(refs: list[dict]) -> dict:
    """In the child: which references PyQt6 lacks (a group is fine when any of its members resolves)."""
    import importlib

    modules: dict[str, object] = {}

    def resolves(ref: dict) -> bool:
        name = ref["module"]
        if name not in modules:
            try:
                modules[name] = importlib.import_module("PyQt6." + name)
            except ImportError:
                modules[name] = None
        parts = ref["name"].split(".")
        return modules[name] is not None and _resolve_chain(modules[name], parts) == len(parts)

    ok = {id(r): resolves(r) for r in refs}
    groups_ok = {r["group"] for r in refs if r["group"] and ok[id(r)]}
    missing = [r for r in refs if not ok[id(r)] and not (r["group"] and r["group"] in groups_ok)]
    from PyQt6.QtCore import PYQT_VERSION_STR, QT_VERSION_STR

    return {"missing": missing, "version": f"PyQt6 {PYQT_VERSION_STR} (Qt {QT_VERSION_STR})"}


def main() -> int:
    if "PyQt5" in sys.modules or "qgis" in sys.modules:
        print("the PyQt6 resolver must run in a process without PyQt5", file=sys.stderr)
        return 2
    try:
        import PyQt6.QtCore  # noqa: F401 - is it there at all
    except ImportError as exc:
        print(f"PyQt6 cannot be imported ({exc})", file=sys.stderr)
        return 3
    print(json.dumps(_resolve_all(json.loads(sys.stdin.read()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
