"""What ``geolocate --references`` needs from a reference collection: the collection checked against the driver's
model and handed to the workers with the driver's fit, each worker's fused geolocator, the references' share of
the archive density, and the matches written beside each shard.

Imported by both the driver (``job``) and the workers, and importing neither, so the two stay apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def driver_model_key(model) -> str:
    """The model key, the backbone fetched into the HF cache first if it is not there (the workers need it too)."""
    from ..model import backbone
    from ..reference.index import model_key

    backbone.locate(model.clip_model, "vision")
    return model_key(model)


def references_for_job(model, index: str) -> tuple[dict, dict, np.ndarray]:
    """What ``geolocate --references`` hands its workers: (worker args, plan options, the references' positions).
    The collection must come from this model; its fit is made here when it has none for its contents."""
    from ..reference.geolocator import ReferenceGeolocator
    from ..reference.index import CollectionError, load_collection

    collection = load_collection(index)
    if collection.model != driver_model_key(model):
        raise CollectionError(f"The reference collection '{index}' was embedded with another CLIP backbone or "
                              f"GeoCLIP head than --clip-model/--weights give: embed it again with embed-photos.")
    params = ReferenceGeolocator(model, collection).params
    return ({"index": str(Path(index).absolute()), "params": params.to_dict()},
            {"references": collection.content_digest(), "fusion": params.to_dict()}, collection.latlon)


def shard_geolocator(model, references: dict):
    """A worker's ReferenceGeolocator: the collection from its index, the driver's fusion (no fit per worker)."""
    from ..reference.fusion import FusionParams
    from ..reference.geolocator import ReferenceGeolocator
    from ..reference.index import load_collection

    params = FusionParams.from_dict(references["params"])
    return ReferenceGeolocator(model, load_collection(references["index"]), params)


def add_density(density: np.ndarray, pred, n_gallery: int) -> None:
    """Add one photo's probability to the archive density: the gallery's part, then each matched reference's
    (its share of the references' mass, which a temperature may have changed from the match's own share)."""
    probs = np.asarray(pred.gallery_probs, dtype=np.float64)
    density[:n_gallery] += probs[:n_gallery]
    matches = getattr(pred, "matches", ())
    shares = sum(match.share for match in matches)
    if shares > 0:
        scale = float(probs[n_gallery:].sum()) / shares
        for match in matches:
            density[n_gallery + match.row] += match.share * scale


def matches_path(out: Path, shard: int) -> Path:
    """A shard's matched reference photos (with --references); not part-*: readers of the shards glob those."""
    return Path(out) / f"matches-{shard:05d}.parquet"


def matches_schema():
    import pyarrow as pa

    return pa.schema([("photo", pa.string()), ("rank", pa.int16()), ("reference", pa.string()), ("lat", pa.float64()),
                      ("lon", pa.float64()), ("similarity", pa.float64()), ("share", pa.float64()),
                      ("geometry", pa.binary())])


def write_matches(preds, out: Path, shard: int) -> Path:
    """Each photo's matches as GeoParquet points at the references (written before the shard that marks it done)."""
    from .geoparquet import wkb_point, write_table

    cols: dict[str, list] = {name: [] for name in matches_schema().names}
    for pred in preds:
        for m in getattr(pred, "matches", ()):
            for name, value in zip(cols, (pred.source, m.rank, m.path, m.lat, m.lon, m.similarity, m.share,
                                          wkb_point(m.lon, m.lat))):
                cols[name].append(value)
    return write_table(cols, matches_schema(), matches_path(out, shard))
