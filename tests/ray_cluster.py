"""A real Ray cluster on 127.0.0.1 for the batch tests: a head (with the dashboard, for job
submission) and a second worker node, each started with ``ray start`` like an operator would.

Processes are found and stopped by this cluster's own temp folder and ports, never with a
machine-wide ``ray stop`` (which would take down any other Ray on the machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from model_utils.batch.submit import free_port, node_port_options

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 500_000_000  # the shared 100K gallery (205 MB) plus headroom


@dataclass
class RayTestCluster:
    temp_dir: Path
    env: dict
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    node_ports: list[int] = field(default_factory=list)
    boot_error: BaseException | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _ray(self, *args: str) -> None:
        done = subprocess.run([RAY, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"ray {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def start_head(self, cpus: int) -> None:
        self._ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
                  f"--num-cpus={cpus}", "--num-gpus=0", f"--object-store-memory={OBJECT_STORE_BYTES}",
                  f"--temp-dir={self.temp_dir}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                  f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={free_port()}",
                  "--disable-usage-stats", *node_port_options())

    def boot(self, head_cpus: int, node_cpus: int) -> None:
        """The head, then one worker node; meant for a thread: an error is kept for raise_boot_error."""
        try:
            self.start_head(cpus=head_cpus)
            self.add_node(cpus=node_cpus)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.boot_error = exc

    def raise_boot_error(self) -> None:
        if self.boot_error is not None:
            raise self.boot_error

    def add_node(self, cpus: int) -> int:
        """A worker node on this machine; returns its node manager port (its handle for kill_node)."""
        port = free_port()
        self._ray("start", f"--address={self.address}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
                  "--num-gpus=0", f"--object-store-memory={OBJECT_STORE_BYTES}", f"--node-manager-port={port}",
                  "--disable-usage-stats", *node_port_options())
        self.node_ports.append(port)
        self.wait_for_nodes(len(self.node_ports) + 1)
        return port

    def alive_nodes(self) -> int:
        import ray

        return sum(1 for n in ray.nodes() if n["Alive"]) if ray.is_initialized() else -1

    def wait_for_nodes(self, n: int, timeout: float = 60.0) -> None:
        """Until ``n`` raylets run (checked from their processes: the test process stays outside Ray)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.raylets()) >= n:
                return
            time.sleep(0.5)
        raise TimeoutError(f"{n} Ray nodes did not come up within {timeout} s")

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: its GCS, raylets, dashboard, workers (found by temp dir or port)."""
        marks = (str(self.temp_dir), f":{self.gcs_port}", f"={self.gcs_port}")
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.pid != os.getpid() and any(m in cmd for m in marks):
                found.append(proc)
        return found

    def raylets(self) -> list[psutil.Process]:
        return [p for p in self.processes() if "raylet" in " ".join(p.cmdline()[:1])]

    def raylet_of(self, node_port: int) -> psutil.Process:
        for proc in self.raylets():
            if f"--node_manager_port={node_port}" in " ".join(proc.cmdline()):
                return proc
        raise LookupError(f"no raylet with node manager port {node_port}")

    def actors_on(self, node_port: int | None = None, name: str = "MapWorker") -> list[psutil.Process]:
        """Worker processes (Ray retitles them ``ray::<actor>``) spawned by that node's raylet, or any node's."""
        raylets = self.raylets() if node_port is None else [self.raylet_of(node_port)]
        return [c for r in raylets for c in _children(r) if name in " ".join(_cmdline(c))]

    def wait_for_no_actors(self, timeout: float = 60.0) -> None:
        """Until no batch worker runs on any node (Ray ends those of a dead driver)."""
        deadline = time.monotonic() + timeout
        while self.actors_on():
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch workers still running {timeout} s after their driver died")
            time.sleep(0.2)

    def kill_node(self, node_port: int) -> None:
        """A whole worker node lost: its raylet and every process under it, killed at once."""
        raylet = self.raylet_of(node_port)
        victims = [raylet, *raylet.children(recursive=True)]
        for proc in victims:
            proc.kill()
        psutil.wait_procs(victims, timeout=10)
        self.node_ports.remove(node_port)

    def stop(self) -> None:
        """Every process of the cluster killed at once, as kill_node does to one node: a graceful SIGTERM only
        made some of them linger for the whole grace period, and nothing of this cluster outlives its test."""
        procs = self.processes()
        procs += [child for proc in procs for child in _children(proc)]
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(proc: psutil.Process) -> list[str]:
    """A process's command line; none for one that has just ended (gone, or a zombie until reaped)."""
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []
