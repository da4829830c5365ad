"""``python -m model_utils.batch geolocate|embed|embed-photos``: GeoCLIP over an archive, locally or on a Ray cluster.

Examples::

    python -m model_utils.batch geolocate --photos /data/archive --out /data/geo
    python -m model_utils.batch geolocate --photos 'pics/**/*.jpg' --out geo --address head:6379 \
        --workers 8 --gpus-per-worker 1
    python -m model_utils.batch embed --points sites.csv --out sites_emb
    python -m model_utils.batch embed-photos --photos /data/field_2024 --out refs
    python -m model_utils.batch geolocate --photos /data/new --out geo --references refs/reference_index.safetensors
"""

from __future__ import annotations

import argparse
import sys

from ..constants import CPU_PRECISIONS, DEFAULT_CELL_DEG, WORLD_BANDWIDTH_KM
from ..errors import GeoClipError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder: new or empty, or the same folder with --resume")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (head:6379, or auto inside a Ray job); default: start Ray on this machine")
    p.add_argument("--workers", type=int, default=1, help="model copies running at once (one actor each)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (0: CPU)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPU cores per worker (also torch threads)")
    p.add_argument("--shard-size", type=int, default=64,
                   help="items per output file; a lost worker redoes at most one shard")
    p.add_argument("--resume", action="store_true", help="finish a job started earlier in --out, skipping done shards")
    p.add_argument("--weights", default=None, help="GeoCLIP weights folder (default: the geoclip wheel's)")
    p.add_argument("--cache-dir", default=None, help="gallery embedding cache (default: the user's cache)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m model_utils.batch", description=__doc__.split("\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    geo = sub.add_parser("geolocate", help="top-k locations of every photo, and an archive density raster")
    geo.add_argument("--photos", required=True,
                     help="a folder (searched recursively), a glob pattern, or a .parquet manifest "
                          "with a 'path' column")
    geo.add_argument("--top-k", type=int, default=5, help="locations kept per photo")
    geo.add_argument("--batch-size", type=int, default=8, help="photos per backbone forward pass")
    geo.add_argument("--clip-model", default=None, help="CLIP backbone: repo id or folder (default: ViT-L/14)")
    geo.add_argument("--precision", default="auto", choices=CPU_PRECISIONS, help="backbone precision")
    geo.add_argument("--cell", type=float, default=DEFAULT_CELL_DEG, help="density raster cell size (degrees)")
    geo.add_argument("--bandwidth-km", type=float, default=WORLD_BANDWIDTH_KM, help="density raster kernel (km)")
    geo.add_argument("--credible-levels", default="",
                     help="e.g. 0.5,0.9: each photo's credible regions at these levels (its raster on the --cell "
                          "world grid with the --bandwidth-km kernel), in regions-*.parquet; default: none")
    geo.add_argument("--temperature", type=float, default=1.0,
                     help="divides the logits before the probabilities are kept, drawn and made into regions (1: as "
                          "trained; a value fitted on geotagged photos in QGIS, calibration.json)")
    geo.add_argument("--over-sea", action="store_true",
                     help="spread each photo's probability over sea too (photos taken at sea); default: the density "
                          "raster and the credible regions keep it on land cells (GSHHG shoreline, lakes as water)")
    geo.add_argument("--references", default=None,
                     help="a reference collection's index (embed-photos' reference_index.safetensors, or one built "
                          "with model_utils.reference): each photo's answer fused with its most similar references")
    _common(geo)
    ref = sub.add_parser("embed-photos", help="a reference collection of geotagged photos, embedded once")
    ref.add_argument("--photos", required=True,
                     help="a folder or glob of photos with EXIF GPS, a .parquet manifest with a 'path' column, or a "
                          ".csv / .parquet table of path, lat, lon")
    ref.add_argument("--reuse", default=None, help="an earlier index: photos whose content it holds are not embedded")
    ref.add_argument("--batch-size", type=int, default=8, help="photos per backbone forward pass")
    ref.add_argument("--clip-model", default=None, help="CLIP backbone: repo id or folder (default: ViT-L/14)")
    ref.add_argument("--precision", default="auto", choices=CPU_PRECISIONS, help="backbone precision")
    _common(ref)
    emb = sub.add_parser("embed", help="GeoCLIP GPS embeddings of a table of points")
    emb.add_argument("--points", required=True, help="CSV (with a header) or Parquet with lat and lon columns")
    _common(emb)
    return top


def _levels(text: str) -> tuple[float, ...]:
    """'0.5,0.9' (or '50%,90%') -> (0.5, 0.9); '' -> (); a bad level is a ValueError naming it."""
    from ..maps.regions import parse_levels

    try:
        return parse_levels(text)
    except ValueError as exc:
        raise ValueError(f"--credible-levels '{text}': {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .job import JobOptions, embed, geolocate
    from .reference_job import embed_photos

    opts = JobOptions(out=args.out, address=args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                      cpus_per_worker=args.cpus_per_worker, shard_size=args.shard_size, resume=args.resume,
                      weights=args.weights, cache_dir=args.cache_dir)
    try:
        if args.command == "geolocate":
            opts.batch_size, opts.clip_model, opts.precision = args.batch_size, args.clip_model, args.precision
            geolocate(args.photos, opts, top_k=args.top_k, cell_deg=args.cell, bandwidth_km=args.bandwidth_km,
                      credible_levels=_levels(args.credible_levels), references=args.references,
                      on_land=not args.over_sea, temperature=args.temperature)
        elif args.command == "embed-photos":
            opts.batch_size, opts.clip_model, opts.precision = args.batch_size, args.clip_model, args.precision
            embed_photos(args.photos, opts, reuse=args.reuse)
        else:
            embed(args.points, opts)
    except (GeoClipError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("canceled: finished shards are kept; run again with --resume to finish the job", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
