"""Lint rules on the code's shape that ruff has no rule for: no module over 400 lines, no function over 80
lines, and no import cycle between the project's modules (function-level imports included: a cycle broken
only by importing inside a function is still two modules that cannot be understood apart).

Usage: ``python -m tools.structure_check``; exit 1 with one line per finding.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("geoclip_qgis", "model_utils")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for top in PACKAGES for p in sorted((ROOT / top).rglob("*.py"))}


def _resolve(name: str, node: ast.ImportFrom | None, importer: str, is_package: bool) -> str:
    """The absolute module an import statement names (relative imports resolved against the importer)."""
    if node is None or node.level == 0:
        return name
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports, anywhere in the file."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node, name, is_package)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # 'pkg.mod.attr' -> the module that holds it
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):  # a package's own parents
                found.add(target)
    return found


def import_cycles(modules: dict[str, Path]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), as a sorted list."""
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return groups


def long_code(modules: dict[str, Path]) -> list[str]:
    findings = []
    for path in modules.values():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        lines = text.count("\n") + (not text.endswith("\n"))
        if lines > MAX_MODULE_LINES:
            findings.append(f"{where}: {lines} lines (at most {MAX_MODULE_LINES} a module)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    findings.append(f"{where}:{node.lineno}: {node.name} has {length} lines "
                                    f"(at most {MAX_FUNCTION_LINES} a function)")
    return findings


def main() -> int:
    modules = project_modules()
    findings = long_code(modules)
    findings += [f"import cycle: {' <-> '.join(group)}" for group in import_cycles(modules)]
    for line in findings:
        print(line)
    print(f"structure_check: {len(findings)} finding(s) in {len(modules)} modules")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
