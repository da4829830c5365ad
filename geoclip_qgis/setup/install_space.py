"""Disk space for an install: refused up front when the disk holding the packages' folder is too small, and
a pip run that fails for space (it says "[Errno 28] No space left on device") named as a full disk."""

from __future__ import annotations

from pathlib import Path

from model_utils.disk import FULL_WORDS, DiskFull, check_space, disk_full_message

# What each package takes once installed (Linux, CPU torch, with what it pulls in); the others about 20 MB.
INSTALLED_BYTES = {"torch": 1_000_000_000, "transformers": 120_000_000, "scikit-learn": 150_000_000,
                   "basemap-data": 45_000_000, "pillow-heif": 25_000_000, "huggingface-hub": 30_000_000}
OTHER_BYTES = 20_000_000
NOTHING = "nothing was installed"


def install_bytes(packages: list[str]) -> int:
    """About how much the installed ``packages`` take on the disk."""
    return sum(INSTALLED_BYTES.get(p.split("==")[0], OTHER_BYTES) for p in packages)


def space_problem(target: Path, packages: list[str]) -> str | None:
    """One line when the disk holding ``target`` lacks room for ``packages``; None when it has it."""
    try:
        check_space(target, install_bytes(packages), "Installing these packages")
    except DiskFull as exc:
        return f"{exc} Nothing was installed."
    return None


def pip_said_full(lines: list[str]) -> bool:
    """Whether pip's last lines say the disk filled up."""
    return any(words in line.lower() for line in lines for words in (*FULL_WORDS, "[errno 28]"))


def full_message(target: Path) -> str:
    """The one wording of a full disk, for the installer's log."""
    return disk_full_message(target, NOTHING)
