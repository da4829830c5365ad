"""A reference collection and its index file: geotagged photos, each embedded once, keyed by content.

The index is one safetensors file: per photo its path, the SHA-256 of its bytes, the size and mtime it had
when hashed (so an unchanged file is not read again), its position and its embedding; and, in the
metadata, the identity of the model that embedded it and the collection's fit (``fit``). It is written
atomically, so a reader sees the old index or the new one, never half of one. A file that is not an index,
is damaged or was made by another model is never trusted: ``read_index`` says why and the build starts
that collection afresh.

The embedding space is GeoCLIP's image embedding (the CLIP backbone followed by GeoCLIP's image head, unit
length, 512 floats): see ``model_key`` for why.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..constants import EMBED_DIM
from ..errors import GeoClipError
from ..safe_files import atomic_path

INDEX_FORMAT = "geoclip-reference-index-v1"
# What is matched: GeoCLIP's image embedding. It is the space GeoCLIP trained to put photos near the GPS
# embedding of where they were taken, so "similar" there leans towards "taken at a similar place" (CLIP's
# own space ranks by what is shown: any church near any church); it is also what GeoCLIP ranks its gallery
# with, so the fit gets GeoCLIP's own answer for every reference without running the backbone again; and
# 512 float32 per photo keeps 100,000 references at 205 MB with exact BLAS matching (768-d CLIP features
# would take 307 MB, or float16 that numpy cannot multiply fast).
EMBEDDING_SPACE = "geoclip-image-v1"
SAMPLE_BYTES = 4 << 20  # bytes hashed from each end of a backbone weight file
INDEX_FILE = "reference_index.safetensors"  # the index inside a collection folder (QGIS build, batch embed-photos)


class CollectionError(GeoClipError):
    """A reference collection cannot be built, read or used; the message says which file and what to do."""


@dataclass(frozen=True)
class ReferenceCollection:
    """Geotagged reference photos: ``paths``, ``latlon`` (N, 2) degrees, unit ``embeddings`` (N, 512) float32,
    ``digests`` (N, 32) uint8 SHA-256 of each file, ``stats`` (N, 2) int64 size and mtime_ns when hashed;
    ``model`` the key of the model that embedded them; ``fit`` the fitted fusion (a dict) or None."""

    paths: tuple[str, ...]
    latlon: np.ndarray
    embeddings: np.ndarray
    digests: np.ndarray
    stats: np.ndarray
    model: str
    fit: dict | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.paths)
        shapes = {"latlon": (n, 2), "embeddings": (n, EMBED_DIM), "digests": (n, 32), "stats": (n, 2)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise CollectionError(f"reference collection: {name} has shape {getattr(self, name).shape}, "
                                     f"expected {shape}")

    def __len__(self) -> int:
        return len(self.paths)

    def digest_rows(self) -> dict[bytes, int]:
        """Row of each content digest (the build's cache: a photo seen before is never embedded again)."""
        return {bytes(d): i for i, d in enumerate(self.digests)}

    def with_fit(self, fit: dict | None) -> ReferenceCollection:
        return replace(self, fit=fit)

    def content_digest(self) -> str:
        """Hash of what the fit depends on (which photos, where, in which order): a fit of other contents is stale."""
        h = hashlib.sha256(self.digests.tobytes())
        h.update(np.ascontiguousarray(self.latlon, dtype=np.float64).tobytes())
        return h.hexdigest()


def model_key(model) -> str:
    """Identity of what embeds a reference photo: the embedding space, the CLIP backbone's files and GeoCLIP's
    image head. Another backbone or head means other embeddings, so its index is rebuilt. The precision is left
    out: bf16 and int8 embeddings were measured within 1 - cosine 1.4e-05 and 6.7e-04 of fp32, far below what
    tells one photo from another."""
    from ..model import backbone
    from ..model.weights import file_sha256

    folder = backbone.resolve(model.clip_model, "vision")  # loaded before this is asked: a local folder
    digest = hashlib.sha256(f"{EMBEDDING_SPACE}|{backbone_identity(Path(folder))}|".encode())
    digest.update(file_sha256(model.files.mlp).encode())
    return digest.hexdigest()


def backbone_identity(folder: Path) -> str:
    """A CLIP model folder's identity without reading gigabytes: its config and, per weight file, its size
    and its first and last 4 MiB (any retraining or other seed changes those)."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    digest.update(config.read_bytes() if config.is_file() else b"")
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        size = path.stat().st_size
        digest.update(f"|{path.name}|{size}|".encode())
        with open(path, "rb") as fh:
            digest.update(fh.read(SAMPLE_BYTES))
            fh.seek(max(0, size - SAMPLE_BYTES))
            digest.update(fh.read(SAMPLE_BYTES))
    return digest.hexdigest()


def _pack_paths(paths: tuple[str, ...]) -> np.ndarray:
    """Paths as one NUL-separated byte string (no path holds a NUL); undecodable names survive the trip."""
    return np.frombuffer(b"\0".join(os.fsencode(p) for p in paths), dtype=np.uint8)


def _unpack_paths(blob: np.ndarray, n: int) -> tuple[str, ...]:
    if n == 0:
        return ()
    paths = tuple(os.fsdecode(p) for p in blob.tobytes().split(b"\0"))
    if len(paths) != n:
        raise ValueError(f"{len(paths)} paths for {n} photos")
    return paths


def write_index(collection: ReferenceCollection, path: str | os.PathLike) -> Path:
    """Save ``collection`` to ``path`` atomically (a temp file in the same folder, then a rename)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"embeddings": np.ascontiguousarray(collection.embeddings, dtype=np.float32),
               "latlon": np.ascontiguousarray(collection.latlon, dtype=np.float64),
               "digests": np.ascontiguousarray(collection.digests, dtype=np.uint8),
               "stats": np.ascontiguousarray(collection.stats, dtype=np.int64),
               "paths": _pack_paths(collection.paths)}
    meta = {"format": INDEX_FORMAT, "model": collection.model, "count": str(len(collection)),
            "fit": json.dumps(collection.fit) if collection.fit is not None else "",
            "info": json.dumps(collection.info)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_index(path: str | os.PathLike, model: str | None = None) -> tuple[ReferenceCollection | None, str]:
    """(the collection in ``path``, "") or (None, why it cannot be used): missing, not an index, damaged, or
    embedded by another model than ``model`` (when given)."""
    path = Path(path)
    if not path.is_file():
        return None, f"no index at {path} yet"
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != INDEX_FORMAT:
                return None, f"{path} is not a reference index of this version (format {meta.get('format')!r})"
            arrays = {name: fh.get_tensor(name) for name in ("embeddings", "latlon", "digests", "stats", "paths")}
        n = int(meta["count"])
        collection = ReferenceCollection(
            paths=_unpack_paths(arrays["paths"], n), latlon=arrays["latlon"], embeddings=arrays["embeddings"],
            digests=arrays["digests"], stats=arrays["stats"], model=meta["model"],
            fit=json.loads(meta["fit"]) if meta.get("fit") else None, info=json.loads(meta.get("info") or "{}"))
    except Exception as exc:  # truncated, corrupt header, wrong shapes: say so and rebuild
        return None, f"{path} cannot be read as a reference index ({type(exc).__name__}: {exc})"
    if model is not None and collection.model != model:
        return None, (f"{path} was embedded by another CLIP backbone or GeoCLIP head than the one loaded now; "
                      f"its photos are embedded again")
    return collection, ""


def load_collection(path: str | os.PathLike) -> ReferenceCollection:
    """Open an index written by ``build_collection`` or the batch job's ``embed-photos``; CollectionError if it
    cannot be used."""
    collection, why = read_index(path)
    if collection is None:
        raise CollectionError(f"Reference collection: {why}. Build it with build_collection() or the batch job's "
                             f"embed-photos.")
    return collection


def find_index(path: str | os.PathLike) -> Path:
    """The index a user points at: an index file, or a collection folder holding INDEX_FILE (what the QGIS build
    and the batch job's ``embed-photos`` write). CollectionError says what the path holds instead."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise CollectionError(f"Reference collection '{path}' does not exist. Pick the folder that 'Build reference "
                              f"collection' (or embed-photos) wrote, or its {INDEX_FILE}.")
    if (path / INDEX_FILE).is_file():
        return path / INDEX_FILE
    raise CollectionError(f"Folder '{path}' holds no reference collection (no {INDEX_FILE}). Build one from it with "
                          f"'Build reference collection', or pick the folder such a build wrote.")


def empty_collection(model: str) -> ReferenceCollection:
    return ReferenceCollection((), np.zeros((0, 2)), np.zeros((0, EMBED_DIM), np.float32),
                               np.zeros((0, 32), np.uint8), np.zeros((0, 2), np.int64), model)
