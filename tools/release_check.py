"""``make release-check``: the built ZIP against every rule of plugins.qgis.org's upload validator, and its scans.

Rules (as the site's validator applies them to an upload): at most 25 MB; a readable ZIP (no CRC error) with no
absolute or ``..`` paths, no ``.pyc``, ``__pycache__``, ``.git`` or ``__MACOSX``; one top folder, named as a
Python identifier (the site's own pattern is looser); ``__init__.py`` and ``metadata.txt`` in it, the latter
with a ``[general]`` section holding name, description, version, qgisMinimumVersion, author, email, about,
tracker and repository; the icon it names present and loadable; ``LICENSE`` present; an author without a
slash; tracker, repository and homepage well-formed http(s) links; then Bandit's mandatory rules and
detect-secrets (``tools/security_scan.py``). Any of those fails the check.

One item is reported but does not fail: links and an email that are placeholders (example.org). The site asks
each link to answer within 10 s and the email to be one the maintainers read; the project has no public home
yet, and choosing one is the maintainers' decision. They live in one place, metadata.txt.
"""

from __future__ import annotations

import argparse
import configparser
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

MAX_BYTES = 25_000_000
REQUIRED = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about", "tracker",
            "repository")
LINKS = ("tracker", "repository", "homepage")
FORBIDDEN_DIRS = ("__MACOSX", ".git", "__pycache__")
PLACEHOLDER_HOSTS = ("example.org", "example.com", "example.net")


@dataclass
class Result:
    failures: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)  # before upload, not failing

    def rule(self, ok: bool, what: str, why: str = "") -> None:
        (self.passed if ok else self.failures).append(what if ok else f"{what}: {why}")


def _names(zf: zipfile.ZipFile, result: Result) -> str:
    """Path rules; returns the top folder's name ("" if there is none)."""
    names = zf.namelist()
    bad_paths = [n for n in names if ".." in n.split("/") or n.startswith("/")]
    result.rule(not bad_paths, "no absolute or '..' paths", ", ".join(bad_paths[:5]))
    pyc = [n for n in names if ".pyc" in n]
    result.rule(not pyc, "no .pyc files", ", ".join(pyc[:5]))
    forbidden = [n for n in names if set(n.split("/")) & set(FORBIDDEN_DIRS)]
    result.rule(not forbidden, "no __pycache__ / .git / __MACOSX", ", ".join(forbidden[:5]))
    result.rule(zf.testzip() is None, "every member reads back (CRC)", "a member is corrupt")
    tops = sorted({n.split("/")[0] for n in names})
    result.rule(len(tops) == 1 and "/" in names[0], "one top folder", f"found {tops}")
    top = tops[0] if tops else ""
    result.rule(top.isidentifier() and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]+", top) is not None,
                f"top folder '{top}' is a Python identifier", "QGIS imports the plugin by that name")
    for member in ("__init__.py", "metadata.txt", "LICENSE"):
        result.rule(f"{top}/{member}" in names, f"{top}/{member} present", "missing")
    return top


def _icon_loads(data: bytes, name: str) -> bool:
    """Does Qt read the icon (an SVG through QtSvg, other formats through QImage)?"""
    from qgis.PyQt.QtCore import QByteArray
    from qgis.PyQt.QtGui import QImage

    if name.lower().endswith(".svg"):
        from qgis.PyQt.QtSvg import QSvgRenderer

        return QSvgRenderer(QByteArray(data)).isValid()
    return not QImage.fromData(data).isNull()


def _metadata(zf: zipfile.ZipFile, top: str, result: Result) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    try:
        parser.read_string(zf.read(f"{top}/metadata.txt").decode("utf-8"))
    except (KeyError, UnicodeDecodeError, configparser.Error) as exc:
        result.rule(False, "metadata.txt parses", str(exc))
        return {}
    result.rule(parser.has_section("general"), "metadata.txt has [general]", "missing")
    meta = dict(parser["general"]) if parser.has_section("general") else {}
    missing = [k for k in REQUIRED if not meta.get(k, "").strip()]
    result.rule(not missing, "required metadata present", f"missing or empty: {', '.join(missing)}")
    result.rule("/" not in meta.get("author", ""), "author has no slash", meta.get("author", ""))
    icon = meta.get("icon", "").removeprefix("./")
    try:
        loads = bool(icon) and _icon_loads(zf.read(f"{top}/{icon}"), icon)
    except KeyError:
        loads = False
    result.rule(loads, f"icon {icon or '(none)'} loads", "missing from the ZIP or not an image Qt reads")
    return meta


def _links(meta: dict[str, str], result: Result) -> None:
    placeholders = []
    for key in LINKS:
        parts = urlsplit(meta.get(key, "").strip())
        result.rule(parts.scheme in ("http", "https") and bool(parts.netloc), f"{key} is an http(s) link",
                    repr(meta.get(key, "")))
        if parts.hostname and parts.hostname.endswith(PLACEHOLDER_HOSTS):
            placeholders.append(f"{key}={meta[key]}")
    email = meta.get("email", "").strip()
    result.rule(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email) is not None, "email is an address", repr(email))
    if email.endswith(PLACEHOLDER_HOSTS):
        placeholders.append(f"email={email}")
    if placeholders:
        result.remaining.append(
            "placeholder links in metadata.txt (" + "; ".join(placeholders) + "). plugins.qgis.org asks each "
            "link to answer within 10 s and an email the maintainers read: set the project's public home in "
            "metadata.txt (the one place they live) before the first upload. This is the maintainers' choice, "
            "so it is reported here and does not fail the check.")


def check(zip_path: Path) -> Result:
    """Every validator rule and both scans on ``zip_path``."""
    result = Result()
    size = zip_path.stat().st_size
    result.rule(size <= MAX_BYTES, f"size {size / 1e6:.1f} MB <= 25 MB", "too big for the site")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            top = _names(zf, result)
            meta = _metadata(zf, top, result) if top else {}
    except zipfile.BadZipFile as exc:
        result.rule(False, "a readable ZIP", str(exc))
        return result
    _links(meta, result)
    from tools.security_scan import scan_zip

    scan = scan_zip(zip_path)
    result.failures += scan.blocking
    result.passed.append(scan.lines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path, nargs="?", default=ROOT / "dist" / "geoclip_qgis.zip")
    args = parser.parse_args(argv)
    result = check(args.zip)
    for line in result.passed:
        print(f"  ok    {line}")
    for line in result.failures:
        print(f"  FAIL  {line}")
    for line in result.remaining:
        print(f"remaining before upload: {line}")
    verdict = "FAILED" if result.failures else "passed"
    print(f"release-check {verdict}: {len(result.passed)} rule(s) passed, {len(result.failures)} failed, "
          f"{len(result.remaining)} item(s) remaining before upload ({args.zip})")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
