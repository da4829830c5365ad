"""Outputs are written whole or not at all, and never over an earlier result.

One place for the two rules every writer follows: a file is written under a hidden temporary name in its
own folder (same filesystem, so the final rename is atomic) and renamed into place only when complete;
a name already taken gets ``_2``, ``_3``… instead of being overwritten.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

MAX_SUFFIX = 10_000


def next_free(base: str, taken: Callable[[str], bool]) -> str:
    """``base`` if not ``taken``, else ``base_2``, ``base_3``…; FileExistsError after MAX_SUFFIX tries."""
    for i in range(1, MAX_SUFFIX):
        candidate = base if i == 1 else f"{base}_{i}"
        if not taken(candidate):
            return candidate
    raise FileExistsError(f"Too many existing outputs named like {base}")


def free_path(path: Path) -> Path:
    """``path`` if free, else ``name_2.ext``, ``name_3.ext``…"""
    return path.with_name(next_free(path.stem, lambda stem: path.with_name(stem + path.suffix).exists())
                          + path.suffix)


def free_stem(folder: Path, stem: str, suffixes: Iterable[str]) -> str:
    """``stem`` or ``stem_2``… so that no ``<stem><suffix>`` exists yet in ``folder`` for any suffix."""
    suffixes = tuple(suffixes)
    return next_free(stem, lambda s: any((folder / f"{s}{suffix}").exists() for suffix in suffixes))


def temp_sibling(path: Path) -> Path:
    """A hidden temporary name beside ``path`` (unique to this process)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through; renamed into place if the block succeeds,
    removed if it fails."""
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_texts(contents: dict[Path, str]) -> None:
    """Write several text files all or none: each to a temporary sibling, then all renamed; on any failure
    the files already renamed are removed again and no temporary file remains."""
    temps = {path: temp_sibling(path) for path in contents}
    try:
        for path, text in contents.items():
            with open(temps[path], "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        commit_renames(list((tmp, path) for path, tmp in temps.items()))
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def commit_renames(renames: list[tuple[Path, Path]]) -> None:
    """Rename every (temporary, final) pair into place; if one fails, undo the others and re-raise."""
    done: list[Path] = []
    try:
        for tmp, final in renames:
            os.replace(tmp, final)
            done.append(final)
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
