"""Which files in a folder are photos: by suffix, hidden files and folders left out, never following
symlinked folders (no loops), unreadable sub-folders skipped instead of stopping the batch.

Nothing is dropped in silence: :func:`scan_photos` also counts every other file by its reason (a HEIC
decoder that is not installed, a video, a RAW file...) and names the sub-folders it did not search, so a
run can say "12 .heic files skipped: ..." and a folder without a usable photo can say exactly why.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .formats import skip_reason
from .images import IMAGE_EXTENSIONS, PhotoError

NAMES_SHOWN = 5  # file names listed per reason in a log line; the rest are counted


@dataclass(frozen=True)
class FolderScan:
    """What a folder holds: its photos, the other files by (suffix, reason), the sub-folders left out."""

    folder: Path
    photos: tuple[Path, ...] = ()
    skipped: dict[tuple[str, str], tuple[Path, ...]] = field(default_factory=dict)
    subfolders: tuple[Path, ...] = ()  # not searched (the scan was not recursive)
    unreadable: tuple[Path, ...] = ()  # sub-folders that could not be listed

    @property
    def n_skipped(self) -> int:
        """Files that are not photos (or cannot be decoded here)."""
        return sum(len(files) for files in self.skipped.values())

    def skipped_lines(self, names: int = NAMES_SHOWN) -> list[str]:
        """One line per (suffix, reason), most files first: '12 .heic files skipped: <reason> (a.heic, ...)'."""
        lines = []
        for (suffix, reason), files in sorted(self.skipped.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            kind = f"{suffix} file" if suffix else "file"
            lines.append(f"{len(files)} {kind}{'' if len(files) == 1 else 's'} skipped: {reason} "
                         f"({_names(files, names)})")
        if self.subfolders:
            n = len(self.subfolders)
            lines.append(f"{n} sub-folder{'' if n == 1 else 's'} not searched ({_names(self.subfolders, names)}): "
                         "include subfolders to search them too")
        if self.unreadable:
            n = len(self.unreadable)
            lines.append(f"{n} sub-folder{'' if n == 1 else 's'} could not be listed "
                         f"({_names(self.unreadable, names)}): check their permissions")
        return lines

    def no_photo_message(self) -> str:
        """Why the scan found no photo, in one paragraph naming the folder."""
        if not self.skipped and not self.subfolders and not self.unreadable:
            return f"The folder {self.folder} is empty: there is no photo in it to geolocate."
        if not self.skipped:
            return f"The folder {self.folder} holds no photo itself: " + "; ".join(self.skipped_lines()) + "."
        return (f"The folder {self.folder} holds {self.n_skipped} file{'' if self.n_skipped == 1 else 's'} but no "
                "photo this plugin can read: " + "; ".join(self.skipped_lines()) + ".")


def _names(paths: tuple[Path, ...], shown: int) -> str:
    listed = ", ".join(p.name for p in paths[:shown])
    return listed + (f", ... and {len(paths) - shown} more" if len(paths) > shown else "")


def find_photos(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted photo files in ``folder`` (suffix in IMAGE_EXTENSIONS, any case); hidden ones skipped.

    Hidden means a name starting with "." (or the Windows hidden attribute), for files and, when
    recursive, for folders too, so thumbnails caches like ``.thumbnails/`` stay out of a batch.
    Sub-folders that cannot be listed are skipped; symlinked folders are not followed (no loops).
    """
    return list(scan_photos(folder, recursive).photos)


def scan_photos(folder: str | os.PathLike[str], recursive: bool = False) -> FolderScan:
    """:func:`find_photos` with the files it left out, by reason, and the sub-folders it did not search."""
    root = Path(os.fspath(folder))
    try:
        st = root.stat()
    except (OSError, ValueError):
        raise PhotoError(
            f"Photo folder not found: '{root}'. Check the path and that the drive is mounted."
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise PhotoError(f"'{root}' is a file, not a folder. Choose the folder that holds the photos.")
    found = _Found()
    try:
        _scan(root, recursive, found, top=True)
    except OSError as exc:
        raise PhotoError.from_os_error(exc, f"Photo folder '{root}'", "listed", "listed",
                                       "Check its permissions.") from None
    skipped = {key: tuple(sorted(files)) for key, files in found.skipped.items()}
    return FolderScan(root, tuple(sorted(found.photos)), skipped, tuple(sorted(found.subfolders)),
                      tuple(sorted(found.unreadable)))


@dataclass
class _Found:
    photos: list[Path] = field(default_factory=list)
    skipped: dict[tuple[str, str], list[Path]] = field(default_factory=dict)
    subfolders: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)


def _is_hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return True
    attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)  # Windows only
    return bool(attributes & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def _scan(folder: Path, recursive: bool, found: _Found, *, top: bool) -> None:
    try:
        with os.scandir(folder) as entries:
            entries = list(entries)
    except OSError:
        if top:
            raise
        found.unreadable.append(folder)  # an unreadable sub-folder does not stop the batch
        return
    for entry in entries:
        try:
            if _is_hidden(entry):
                continue
            if entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path)):
                # a link to a photo that is gone is listed too: loading it then says so, per file
                suffix = Path(entry.name).suffix.lower()
                if suffix in IMAGE_EXTENSIONS:
                    found.photos.append(folder / entry.name)
                else:
                    found.skipped.setdefault((suffix, skip_reason(suffix)), []).append(folder / entry.name)
            elif entry.is_dir(follow_symlinks=False):
                if recursive:
                    _scan(folder / entry.name, recursive, found, top=False)
                else:
                    found.subfolders.append(folder / entry.name)
        except OSError:
            continue  # vanished or unreadable entry
