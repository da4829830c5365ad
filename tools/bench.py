"""``make bench``: run the benchmark sections and write ``bench/results.json`` + ``bench/results.md``.

Usage: ``python -m tools.bench --out bench [--only core --only embeddings ...]``.

A section is a function ``fn(out: dict) -> None`` that fills ``out``. Keys it may use:

* ``metrics``: rows made with :func:`add_metric` (name, value, unit, target, passed, note); they
  become the section's table, with PASS / MISS for rows that have a target;
* ``notes``: a list of sentences shown under the table;
* anything else (JSON-able): kept in ``results.json``; scalars are also shown as a details table.

Sections run in this process one after the other, fully offline. One that cannot be imported is
recorded as "not available" with the reason; one that raises is recorded with its error (the
metrics it had filled are kept) and the others still run. The exit code is 0 when every section
ran or was unavailable (missed targets are reported, not fatal) and 1 when a section crashed.
Results of sections not run this time are kept from the previous ``results.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (module, function, title)
SECTIONS: dict[str, tuple[str, str, str]] = {
    "core": ("tools.bench_core", "bench_core", "Model core and photo geolocation (issues 3 and 4)"),
    "embeddings": ("tools.bench_embeddings", "bench_embeddings", "GPS embeddings"),
    "geonames": ("tools.bench_downstream", "bench_geonames", "Downstream classifier (GeoNames)"),
    "maps": ("tools.bench_maps", "bench_maps", "'Places like here': mass over land"),
    "land": ("tools.bench_maps", "bench_land", "Probability on land: coastal cities, kernel cost, a coastal region"),
    "precision": ("tools.bench_precision", "bench_precision", "bf16 autocast against fp32 on the CPU"),
    "ray": ("tools.bench_ray", "bench_ray", "The Ray batch job against GeoCLIP.predict in one process"),
    "browser": ("tools.bench_browser", "bench_browser", "Reviewing a run: 1,000 photos through the dock, the results "
                "browser"),
    "reference": ("tools.bench_reference", "bench_reference", "Reference photo collections: index, kNN, fit, "
                  "fused accuracy"),
}
ALIASES = {func: name for name, (_, func, _) in SECTIONS.items()}

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t, ">": lambda v, t: v > t, "<=": lambda v, t: v <= t, "<": lambda v, t: v < t,
}


# ---------------------------------------------------------------------------- section helpers
def add_metric(out: dict, name: str, value: float | None, unit: str = "", target: tuple[str, float] | None = None,
               note: str = "") -> dict:
    """Append a result row to ``out["metrics"]``; with ``target=(op, bound)`` it is judged PASS / MISS."""
    row = {"name": name, "value": value, "unit": unit, "target": None, "passed": None, "note": note}
    if target is not None:
        op, bound = target
        row["target"] = {"op": op, "value": bound}
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            row["passed"] = bool(_OPS[op](float(value), float(bound)))
    out.setdefault("metrics", []).append(row)
    return row


def bench_dir() -> Path:
    """The output folder of this run (sections keep their persistent inputs under it)."""
    return Path(os.environ.get("GEOCLIP_BENCH_DIR") or ROOT / "bench").resolve()


def log(message: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception as exc:  # noqa: BLE001 - a missing package is reported, not fatal
        return f"not importable ({type(exc).__name__})"


def machine_info() -> dict:
    info: dict = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "numpy": _version("numpy"),
    }
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


# ---------------------------------------------------------------------------- running
def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def run_section(name: str) -> dict:
    module_name, func_name, title = SECTIONS[name]
    record: dict = {"title": title, "function": f"{module_name}.{func_name}", "started": _now()}
    try:
        fn = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:  # noqa: BLE001 - any import problem means "not available"
        record.update(status="not available", reason=f"{type(exc).__name__}: {exc}")
        log(f"{name}: not available ({record['reason']})")
        return record
    out: dict = {}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    log(f"{name}: start")
    try:
        fn(out)
        record["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - recorded, the other sections still run
        record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=12))
        log(f"{name}: FAILED: {record['error']}")
    record["seconds"] = round(time.perf_counter() - t0, 1)
    record["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    record["results"] = out
    log(f"{name}: {record['status']} in {record['seconds']} s")
    return record


def _jsonable(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return repr(obj)


def write_atomic(path: Path, text: str) -> None:
    """A reader never sees half a file."""
    from model_utils.safe_files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------- markdown
def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        mag = abs(value)
        text = f"{value:.3g}" if mag < 1000 else f"{value:,.0f}"
        if mag and mag < 0.001:
            text = f"{value:.2e}"
    else:
        text = str(value)
    if not unit:
        return text
    return f"{text}{unit}" if unit in {"%", "x"} else f"{text} {unit}"


def _target_text(target: dict | None, unit: str) -> str:
    if not target:
        return ""
    op = {">=": "≥", "<=": "≤"}.get(target["op"], target["op"])
    return f"{op} {_fmt(float(target['value']), unit)}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _scalars(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in data.items():
        if key in {"metrics", "notes"}:
            continue
        label = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_scalars(value, label + "."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            rows.append((label, value))
    return rows


def render_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# GeoCLIP for QGIS: benchmarks",
        "",
        f"Written {results['written']} by `{results['command']}`.",
        "",
        f"Machine: {m.get('cpu')}, {m.get('logical_cores')} logical cores"
        + (f" ({m['physical_cores']} physical)" if m.get("physical_cores") else "")
        + (f", {m['ram_gb']} GB RAM" if m.get("ram_gb") else "")
        + f"; Python {m.get('python')}, torch {m.get('torch')} ({m.get('torch_threads')} threads), "
        f"transformers {m.get('transformers')}, numpy {m.get('numpy')}; {m.get('platform')}.",
        "",
    ]
    passed = missed = 0
    for name, sec in results["sections"].items():
        lines += [f"## {name}: {sec.get('title', '')}", ""]
        status = sec.get("status")
        if status == "not available":
            lines += [f"Not available: {sec.get('reason')}", ""]
            continue
        load = sec.get("load_average") or ["?", "?"]
        lines += [f"Measured {sec.get('started')} in {sec.get('seconds')} s "
                  f"(1-min load average {load[0]} at start, {load[1]} at end).", ""]
        if status == "error":
            lines += [f"**The section failed**: `{_cell(sec.get('error'))}` (partial results below).", ""]
        out = sec.get("results") or {}
        metrics = out.get("metrics") or []
        if metrics:
            lines += ["| Metric | Value | Target | Result | Notes |", "|---|---:|---|---|---|"]
            for row in metrics:
                verdict = "" if row.get("passed") is None else ("PASS" if row["passed"] else "**MISS**")
                if row.get("target") and row.get("passed") is None:
                    verdict = "not measured"
                passed += row.get("passed") is True
                missed += row.get("passed") is False
                lines.append("| " + " | ".join(_cell(x) for x in (
                    row["name"], _fmt(row.get("value"), row.get("unit", "")),
                    _target_text(row.get("target"), row.get("unit", "")), verdict, row.get("note", ""))) + " |")
            lines.append("")
        for note in out.get("notes") or []:
            lines.append(f"- {note}")
        if out.get("notes"):
            lines.append("")
        details = _scalars(out)
        if details:
            lines += ["<details><summary>Details</summary>", "", "| Key | Value |", "|---|---|"]
            lines += [f"| {_cell(k)} | {_cell(_fmt(v))} |" for k, v in details]
            lines += ["", "</details>", ""]
    lines[6:6] = [f"Targets: {passed} PASS, {missed} MISS.", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "bench"), help="output folder (default: bench/)")
    parser.add_argument("--only", action="append", default=[], metavar="SECTION",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)

    chosen = [ALIASES.get(s, s) for s in args.only] or list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GEOCLIP_BENCH_DIR"] = str(out_dir)

    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    sections: dict = {}
    try:
        previous = json.loads(json_path.read_text(encoding="utf-8")).get("sections", {})
        sections = {k: v for k, v in previous.items() if k in SECTIONS}
    except (OSError, ValueError, AttributeError):
        pass
    command = "python -m tools.bench --out " + str(args.out) + "".join(f" --only {s}" for s in args.only)
    results = {"written": _now(), "command": command, "machine": machine_info(), "sections": sections}

    crashed = False
    for name in chosen:
        record = run_section(name)
        crashed |= record.get("status") == "error"
        sections[name] = record
        results["sections"] = {k: sections[k] for k in SECTIONS if k in sections}
        results["written"] = _now()
        write_atomic(json_path, json.dumps(results, indent=2, default=_jsonable) + "\n")
        write_atomic(md_path, render_markdown(results))
    log(f"wrote {md_path} and {json_path}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
