"""The two scans plugins.qgis.org runs on every uploaded ZIP, run here on the plugin's ZIP first (``make lint``).

The site marks a version blocked when Bandit reports a finding from its mandatory rule set, or detect-secrets
reports a secret. So: Bandit over the unpacked ZIP (the plugin and its ``model_utils``), the mandatory rules
failing the scan and the other ("skippable") rules listed; detect-secrets with its default detectors over
every file of the ZIP; and no ``# nosec`` that does not name its rule and say why.

Usage: ``python tools/security_scan.py [--zip dist/geoclip_qgis.zip]`` (no ``--zip``: builds one in a temp
folder). Exit 1 when the site would block the upload.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

# plugins.qgis.org's mandatory Bandit rules: any finding of these blocks the version
MANDATORY = ("B102 B103 B105 B106 B107 B111 B201 B202 B301 B302 B304 B305 B306 B307 B312 B321 B323 B401 B402 B412 "
             "B413 B501 B502 B503 B505 B506 B507 B601 B602 B604 B605 B609 B610 B611 B612 B613 B615 B701").split()
# a nosec must say which rule it silences and why: "# nosec B608 - identifiers are quoted by _quote()"
NOSEC = re.compile(r"#\s*nosec\b(?P<rest>.*)$")
NOSEC_OK = re.compile(r"^\s*:?\s*B\d{3}(\s*,\s*B\d{3})*\s+[-–:]\s*\S.{8,}")


@dataclass
class ScanReport:
    files: int = 0
    blocking: list[str] = field(default_factory=list)  # mandatory Bandit rules, secrets, bare nosec
    skippable: Counter = field(default_factory=Counter)  # other Bandit rules: reported, never blocking

    def lines(self) -> list[str]:
        skip = ", ".join(f"{rule} x{n}" for rule, n in sorted(self.skippable.items())) or "none"
        return [*self.blocking, f"security scan: {self.files} files; {len(self.blocking)} blocking finding(s) "
                f"(Bandit's {len(MANDATORY)} mandatory rules, detect-secrets, nosec without rule and reason); "
                f"skippable Bandit findings (not blocking on plugins.qgis.org): {skip}"]


def _bandit(folder: Path, report: ScanReport) -> None:
    done = subprocess.run([sys.executable, "-m", "bandit", "-r", str(folder), "-f", "json", "-q"],
                          capture_output=True, text=True, check=False, timeout=600)
    try:
        results = json.loads(done.stdout)["results"]
    except (ValueError, KeyError) as exc:
        raise SystemExit(f"security scan: Bandit did not run ({exc}): {done.stderr[-1500:]}") from exc
    for item in results:
        where = f"{Path(item['filename']).relative_to(folder)}:{item['line_number']}"
        if item["test_id"] in MANDATORY:
            report.blocking.append(f"{where}: Bandit {item['test_id']} (mandatory) {item['issue_text']}")
        else:
            report.skippable[item["test_id"]] += 1


def _detect_secrets(folder: Path, report: ScanReport) -> None:
    done = subprocess.run([sys.executable, "-m", "detect_secrets", "scan", "--all-files", "."], cwd=folder,
                          capture_output=True, text=True, check=False, timeout=600)
    try:
        results = json.loads(done.stdout)["results"]
    except (ValueError, KeyError) as exc:
        raise SystemExit(f"security scan: detect-secrets did not run ({exc}): {done.stderr[-1500:]}") from exc
    for name, secrets in sorted(results.items()):
        for secret in secrets:
            report.blocking.append(f"{name}:{secret['line_number']}: detect-secrets {secret['type']}")


def _nosec(folder: Path, report: ScanReport) -> None:
    for path in sorted(folder.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = NOSEC.search(line)
            if found and not NOSEC_OK.match(found["rest"]):
                report.blocking.append(f"{path.relative_to(folder)}:{number}: '# nosec' must name its rule and "
                                       "say why ('# nosec B608 - ...')")


def scan_zip(zip_path: Path) -> ScanReport:
    """Both scans over the files of ``zip_path``, as the site runs them on an upload."""
    report = ScanReport()
    with tempfile.TemporaryDirectory(prefix="geoclip-scan-") as tmp:
        folder = Path(tmp)
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(folder)
            report.files = sum(1 for n in zf.namelist() if not n.endswith("/"))
        _bandit(folder, report)
        _detect_secrets(folder, report)
        _nosec(folder, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, help="the plugin ZIP (default: build one in a temp folder)")
    args = parser.parse_args(argv)
    if args.zip is not None:
        report = scan_zip(args.zip)
    else:
        from tools.package import build

        with tempfile.TemporaryDirectory(prefix="geoclip-zip-") as tmp:
            report = scan_zip(build(Path(tmp) / "geoclip_qgis.zip"))
    print("\n".join(report.lines()))
    return 1 if report.blocking else 0


if __name__ == "__main__":
    sys.exit(main())
