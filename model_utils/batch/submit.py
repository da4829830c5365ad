"""Submitting ``python -m model_utils.batch`` to a Ray cluster through Ray's Job Submission API.

Used by the QGIS algorithm and by scripts: :class:`LocalHead` starts a private one-machine Ray (with
its dashboard, which serves the API) when no cluster is given; :class:`ClusterJob` submits, follows
the log, reads progress and stops the job.
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import GeoClipError
from .job import PROGRESS_PREFIX, runtime_env

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
PROGRESS = re.compile(re.escape(PROGRESS_PREFIX) + r" progress (\d+)/(\d+)")
HEAD_START_TIMEOUT_S = 90.0
SUBMIT_RETRY_S = 60.0  # how long a just-started cluster may take to accept jobs


class ClusterError(GeoClipError):
    """The cluster cannot be reached, refused the job, or the job failed; the message says which."""


def ray_missing_message() -> str | None:
    """None when Ray can be imported here; else what to install, and where."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return ("Ray is not installed in this Python. Install it with: pip install 'ray[data,default]' "
                "(into QGIS's Python; every other GeoCLIP algorithm works without it).")
    return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_port_options() -> list[str]:
    """Free ports for a node's own services. Ray's defaults are fixed numbers (the dashboard agent's 52365,
    ...): a second Ray node on the same machine (another user's, or a test cluster) would find them taken,
    and its job agent would never come up ('No available agent to submit job')."""
    names = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
             "metrics-export-port", "object-manager-port")
    return [f"--{name}={free_port()}" for name in names]


def _end_group(pgid: int, grace_s: float = 3.0) -> None:
    """Return once every process of the group has exited. The head exits first and its GCS, raylet and workers
    end behind it, seconds later on a busy machine (a run that said Ray stopped left them running): they get
    ``grace_s`` to end on the SIGTERM they were sent, then are killed, and the group is waited for again."""
    for sig in (None, signal.SIGKILL):
        try:
            if sig is not None:
                os.killpg(pgid, sig)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                os.killpg(pgid, 0)  # raises once no process of the group is left
                time.sleep(0.05)
        except (ProcessLookupError, PermissionError):
            return


class LocalHead:
    """A one-machine Ray cluster owned by this process: started with ``ray start --head --block`` in its
    own process group, stopped (the whole group) by :meth:`stop`. Token authentication with a fresh token."""

    def __init__(self, python: str, cpus: int | None = None) -> None:
        self.python = python
        self.cpus = cpus
        self.token = secrets.token_hex(16)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="geoclip-ray-"))
        self.dashboard_port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def environment(self) -> dict:
        """This process's packages (``sys.path``) for the head, and ``python`` on PATH meaning ``self.python``
        (job entrypoints are shell commands). No drain on SIGTERM: Ray (2.60 here) first drains a node told to stop,
        for up to RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S (30 s); a private head whose job has ended has nothing
        to drain, and stop() took 17 s instead of 2 s, between the job's end and its results loading in QGIS."""
        bin_dir = self.temp_dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        link = bin_dir / "python"
        if not link.exists():
            link.symlink_to(self.python)
        paths = [p for p in sys.path if p and Path(p).is_dir()]
        return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                    PYTHONPATH=os.pathsep.join(paths), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                    RAY_USAGE_STATS_ENABLED="0", RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")

    def start(self, is_canceled=lambda: False) -> None:
        cmd = [self.python, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())", "start",
               "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
               f"--temp-dir={self.temp_dir}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={free_port()}",
               "--disable-usage-stats", *node_port_options(), *([f"--num-cpus={self.cpus}"] if self.cpus else [])]
        log = open(self.temp_dir / "head.log", "wb")  # noqa: SIM115 - the head writes to it while it lives
        try:
            self.process = subprocess.Popen(cmd, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + HEAD_START_TIMEOUT_S
        while not self._dashboard_up():
            if self.process.poll() is not None or time.monotonic() > deadline or is_canceled():
                tail = (self.temp_dir / "head.log").read_text(errors="replace")[-1500:]
                self.stop()
                if is_canceled():
                    raise ClusterError("Canceled while starting the local Ray.")
                raise ClusterError(f"The local Ray did not start within {HEAD_START_TIMEOUT_S:.0f} s; its log "
                                   f"ends with:\n{tail}")
            time.sleep(0.5)

    def _dashboard_up(self) -> bool:
        """The dashboard answers HTTP (directly: a proxy from the environment must not see 127.0.0.1)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"{self.address}/api/version",
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with opener.open(request, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False

    def stop(self) -> None:
        """End the head and everything it started (its process group), then remove its temp folder."""
        if self.process is not None and self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.process.pid, sig)
                    self.process.wait(timeout=wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        if self.process is not None:
            _end_group(self.process.pid)
        self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class ClusterJob:
    """One ``model_utils.batch`` run submitted to the cluster whose dashboard is at ``address``."""

    def __init__(self, address: str, token: str | None = None) -> None:
        from ray.job_submission import JobSubmissionClient

        address = address.strip()
        if "://" not in address:
            address = f"http://{address}"
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            self.client = JobSubmissionClient(address, headers=headers)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError or ValueError here
            raise ClusterError(f"Cannot reach the Ray cluster's dashboard at {address}: {exc}. Give the dashboard "
                               f"address (http://<head>:8265), or leave it empty to run on this machine.") from None
        self.job_id: str | None = None
        self._seen = 0
        self.progress: tuple[int, int] | None = None
        self.recent: collections.deque[str] = collections.deque(maxlen=20)  # for a failure's message

    def submit(self, args: list[str], env: dict[str, str] | None = None) -> str:
        """Start ``python -m model_utils.batch <args>`` on the cluster, with this ``model_utils`` shipped along."""
        job_env = runtime_env()
        job_env["env_vars"].update(env or {})
        deadline = time.monotonic() + SUBMIT_RETRY_S
        # one id for every attempt: a retry after a lost answer can never start the job twice
        submission_id = f"geoclip_{secrets.token_hex(8)}"
        while True:
            try:
                self.job_id = self.client.submit_job(
                    entrypoint="python -m model_utils.batch " + shlex.join(args), submission_id=submission_id,
                    runtime_env=job_env, metadata={"submitted_by": "GeoCLIP for QGIS"})
                return self.job_id
            except RuntimeError as exc:
                if "already exists" in str(exc):  # an earlier attempt got through; its answer was lost
                    self.job_id = submission_id
                    return self.job_id
                # a cluster that has just started answers 'No available agent' until its job agent is up
                if "No available agent" not in str(exc) or time.monotonic() > deadline:
                    raise ClusterError(f"The cluster refused the job: {exc}") from None
            except OSError as exc:  # requests' ConnectionError: a busy new dashboard dropped the connection
                if time.monotonic() > deadline:
                    raise ClusterError(f"The cluster did not answer the job's submission: {exc}") from None
            time.sleep(1.0)

    def status(self) -> str:
        return str(self.client.get_job_status(self.job_id)).rsplit(".", 1)[-1]

    def new_log_lines(self) -> list[str]:
        """Log lines printed since the last call; progress lines update ``self.progress``."""
        logs = self.client.get_job_logs(self.job_id)
        fresh, self._seen = logs[self._seen:], len(logs)
        lines = [line for line in fresh.splitlines() if line.strip()]
        self.recent.extend(lines)
        for line in lines:
            match = PROGRESS.search(line)
            if match:
                self.progress = (int(match.group(1)), int(match.group(2)))
        return lines

    def failure(self) -> str:
        """Why the job ended badly: Ray's message and the log's last lines."""
        message = self.client.get_job_info(self.job_id).message or ""
        return "\n".join([message, *self.recent]).strip() or "(the job printed nothing)"

    def stop(self, timeout: float = 60.0) -> str:
        """Stop the job on the cluster and wait until Ray reports it ended; its final status."""
        self.client.stop_job(self.job_id)
        deadline = time.monotonic() + timeout
        status = self.status()
        while status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            status = self.status()
        return status
