"""Peak memory of one model in a fresh interpreter: ``python -m tools.bench_rss --rss-child ours|official``.

A subprocess per model, so neither sees the other's allocations (or the benchmark's own), run by
``tools/bench_core.py``; it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD_TIMEOUT_S = 600
TOP_K = 5


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def _child_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    return env


def json_child(cmd: list[str], what: str, env: dict | None = None, timeout: float = CHILD_TIMEOUT_S) -> dict:
    """Run ``cmd`` (a fresh interpreter) and return the last JSON line it printed; a failure names ``what``."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or _child_env(), timeout=timeout, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' / '.join(tail)}")
    return json.loads(lines[-1])


def measure_rss(which: str, clip: Path, photo: Path, cache_dir: Path, precision: str = "fp32") -> dict:
    """Run one prediction in a fresh interpreter; its JSON report (peak RSS etc.)."""
    return json_child([sys.executable, "-m", "tools.bench_rss", "--rss-child", which, "--clip", str(clip),
                       "--photo", str(photo), "--cache-dir", str(cache_dir), "--precision", precision],
                      f"RSS subprocess '{which}'")


def _peak_rss_mb() -> float:
    """High-water RSS of this process image.

    ``VmHWM`` is reset by exec; ``ru_maxrss`` is not: a child forked from a 4 GB benchmark process
    reports 4 GB whatever it does itself, so ru_maxrss is only the fallback.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_child(which: str, clip: str, photo: str, cache_dir: str, precision: str = "fp32") -> dict:
    """Load one model, predict one photo; report memory (MB) and times."""
    import psutil
    import torch

    proc = psutil.Process()
    if which == "ours":
        from model_utils.model.geoclip import GeoCLIP

        base = proc.memory_info().rss

        def load():
            m = GeoCLIP.from_pretrained(clip_model=clip, device="cpu", precision=precision, cache_dir=cache_dir)
            m.load_backbone()
            m.gallery_embeddings()
            return m

        def predict(m):
            return m.predict([photo], top_k=TOP_K)
    else:
        from tools.samples.official import official_model_package

        pkg = official_model_package()
        base = proc.memory_info().rss

        def load():
            return pkg.GeoCLIP(from_pretrained=True, clip_path=clip).eval()

        def predict(m):
            return m.predict(photo, top_k=TOP_K)

    t_load, model = _timed(load)
    loaded = proc.memory_info().rss
    t_pred, _ = _timed(predict, model)
    return {"which": which, "after_imports_mb": base / 2**20, "after_load_mb": loaded / 2**20,
            "peak_rss_mb": _peak_rss_mb(), "load_s": t_load, "predict_s": t_pred,
            "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rss-child", choices=("ours", "official"), required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8", "auto"))
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    print(json.dumps(_rss_child(args.rss_child, args.clip, args.photo, args.cache_dir, args.precision)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
