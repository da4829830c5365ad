"""Driving ``python -m model_utils.batch`` jobs from tests and reading what they leave: subprocesses as a user
runs them, rehearsal holds, shard files, and the processes of a local Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def hold_after(tmp_path: Path, n: int) -> Path:
    """A rehearsal hold file: once ``n`` shards are written, no other starts until the file is deleted
    (the 2 workers may each have started one before that: at most n + 1 shards)."""
    path = tmp_path / "hold"
    path.write_text(str(n), encoding="utf-8")
    return path


def run_job(env: dict, *args: str, hold: Path | None = None, wait: bool = True, timeout: float = 240):
    cmd = [sys.executable, "-m", "model_utils.batch", *args]
    job_env = dict(env, GEOCLIP_BATCH_HOLD_FILE=str(hold)) if hold else env
    proc = subprocess.Popen(cmd, env=job_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def read_rows(out: Path):
    import pyarrow.parquet as pq

    files = sorted(out.glob("part-*.parquet"))
    return files, pq.read_table(files).to_pylist() if files else []


def wait_for_shards(out: Path, n: int, proc, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(list(out.glob("part-*.parquet"))) < n:
        if proc.poll() is not None:
            raise AssertionError(f"the job ended before {n} shards were written:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:  # the job goes, or it would hold the cluster's CPUs for the next tests
            os.killpg(proc.pid, signal.SIGKILL)
            raise TimeoutError(f"fewer than {n} shards after {timeout} s; the job said:\n{proc.communicate()[0]}")
        time.sleep(0.2)


def cancel_once_written(feedback, out: Path, n: int, last_shard: int) -> threading.Thread:
    """Cancel ``feedback`` from a thread of its own once ``n`` shards are written (the run's thread polls
    isCanceled), leaving beside them what a writer killed mid-shard leaves: the held workers never start one."""
    from model_utils.batch.plan import shard_path
    from model_utils.safe_files import temp_sibling

    def watch() -> None:
        deadline = time.monotonic() + 180
        while len(list(out.glob("part-*.parquet"))) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        if out.is_dir():
            temp_sibling(shard_path(out, last_shard)).touch()
        feedback.cancel()

    thread = threading.Thread(target=watch, name="test-cancel", daemon=True)
    thread.start()
    return thread


def ray_processes(marker: str) -> list:
    import psutil

    return [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
