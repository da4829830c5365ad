"""Which files in a folder are photos: by suffix, hidden files and folders left out, never following
symlinked folders (no loops), unreadable sub-folders skipped instead of stopping the batch."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .images import IMAGE_EXTENSIONS, PhotoError


def find_photos(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted photo files in ``folder`` (suffix in IMAGE_EXTENSIONS, any case); hidden ones skipped.

    Hidden means a name starting with "." (or the Windows hidden attribute), for files and, when
    recursive, for folders too, so thumbnails caches like ``.thumbnails/`` stay out of a batch.
    Sub-folders that cannot be listed are skipped; symlinked folders are not followed (no loops).
    """
    root = Path(os.fspath(folder))
    try:
        st = root.stat()
    except (OSError, ValueError):
        raise PhotoError(
            f"Photo folder not found: '{root}'. Check the path and that the drive is mounted."
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise PhotoError(f"'{root}' is a file, not a folder. Choose the folder that holds the photos.")
    try:
        found = _scan(root, recursive, top=True)
    except OSError as exc:
        raise PhotoError.from_os_error(exc, f"Photo folder '{root}'", "listed", "listed",
                                       "Check its permissions.") from None
    return sorted(found)


def _is_hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return True
    attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)  # Windows only
    return bool(attributes & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def _scan(folder: Path, recursive: bool, *, top: bool) -> list[Path]:
    found: list[Path] = []
    try:
        with os.scandir(folder) as entries:
            entries = list(entries)
    except OSError:
        if top:
            raise
        return found  # an unreadable sub-folder does not stop the batch
    for entry in entries:
        try:
            if _is_hidden(entry):
                continue
            if entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path)):
                # a link to a photo that is gone is listed too: loading it then says so, per file
                if Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
                    found.append(folder / entry.name)
            elif recursive and entry.is_dir(follow_symlinks=False):
                found.extend(_scan(folder / entry.name, recursive, top=False))
        except OSError:
            continue  # vanished or unreadable entry
    return found
