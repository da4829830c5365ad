"""A job's plan: its fixed item list cut into numbered shards, saved so a re-run can resume it.

A shard is done when its GeoParquet file exists (written atomically, last). Retried shards
(a worker or node lost mid-shard) rewrite the same file, so every item lands exactly once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import GeoClipError
from ..safe_files import write_texts

PLAN_FILE = "plan.json"
DENSITY_SUFFIX = ".density.npy"


class PlanError(GeoClipError):
    """The output folder does not fit the job (another job's output, or a changed input)."""


@dataclass(frozen=True)
class Plan:
    kind: str  # "geolocate" or "embed"
    n_items: int
    shard_size: int
    items_digest: str
    options: dict = field(default_factory=dict)  # whatever changes the answers (model, top-k)

    @classmethod
    def make(cls, kind: str, items: list, shard_size: int, options: dict) -> Plan:
        if shard_size < 1:
            raise ValueError(f"shard size must be >= 1, got {shard_size}")
        digest = hashlib.sha256("\n".join(map(str, items)).encode()).hexdigest()
        return cls(kind, len(items), int(shard_size), digest, dict(sorted(options.items())))

    @property
    def n_shards(self) -> int:
        return -(-self.n_items // self.shard_size)

    def bounds(self, shard: int) -> tuple[int, int]:
        start = shard * self.shard_size
        return start, min(start + self.shard_size, self.n_items)


def shard_path(out: Path, shard: int) -> Path:
    return Path(out) / f"part-{shard:05d}.parquet"


def regions_path(out: Path, shard: int) -> Path:
    """A shard's credible regions (with --credible-levels); not part-*: readers of the shards glob those."""
    return Path(out) / f"regions-{shard:05d}.parquet"


def density_path(out: Path, shard: int) -> Path:
    return Path(out) / f"part-{shard:05d}{DENSITY_SUFFIX}"


def output_problem(out: Path, resume: bool) -> str | None:
    """Why ``out`` cannot take the job (another job there without ``resume``, or foreign files); None if it can."""
    out = Path(out)
    saved = out / PLAN_FILE
    if saved.exists() and not resume:
        plan = Plan(**json.loads(saved.read_text()))
        return (f"'{out}' already holds a batch job's output ({plan.kind}, {plan.n_items} items). "
                f"Pass --resume to finish that job, or choose another --out folder.")
    if not saved.exists() and out.exists() and (not out.is_dir() or any(out.iterdir())):
        return f"'{out}' is not empty and holds no batch job. Choose an empty or new --out folder."
    return None


def prepare_output(out: Path, plan: Plan, resume: bool) -> list[int]:
    """Create or check ``out``; the shards still to do. Never overwrites another job's output."""
    out = Path(out)
    saved_file = out / PLAN_FILE
    problem = output_problem(out, resume)
    if problem:
        raise PlanError(problem)
    if saved_file.exists():
        saved = Plan(**json.loads(saved_file.read_text()))
        if saved != plan:
            raise PlanError(f"'{out}' holds another job: {_difference(saved, plan)}. Resume needs the same input "
                            f"and options; choose another --out folder for a new job.")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_texts({saved_file: json.dumps(asdict(plan), indent=1)})
    remove_partial_files(out)
    return [s for s in range(plan.n_shards) if not shard_path(out, s).exists()]


def remove_partial_files(out: Path) -> list[Path]:
    """Delete the hidden temporaries of shards whose writer was killed mid-write (a lost worker, node or
    driver); called when no worker of the job can still be writing: before it starts and after it ends."""
    removed = [p for p in Path(out).glob(".*.part.*") if p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _difference(saved: Plan, now: Plan) -> str:
    if saved.kind != now.kind:
        return f"it was a '{saved.kind}' job"
    if saved.items_digest != now.items_digest:
        return f"the input changed ({saved.n_items} items then, {now.n_items} now, or other files)"
    if saved.shard_size != now.shard_size:
        return f"shard size {saved.shard_size} then, {now.shard_size} now"
    changed = sorted(k for k in set(saved.options) | set(now.options) if saved.options.get(k) != now.options.get(k))
    return "options changed: " + ", ".join(f"{k} {saved.options.get(k)!r} -> {now.options.get(k)!r}" for k in changed)
