"""``make demo``: the main job, headless, on sample photos -> demo_output/.

Geolocates the example photo shipped in the geoclip wheel (plus PHOTOS=folder) and the text query
"Pyramids of Giza" when the CLIP backbone is available; always runs the parts that need no backbone
(GPS embeddings of a sample point layer, a "places like here" raster); renders everything over
QGIS's world basemap into demo_output/demo_map.png. Exits 0 only if every part that ran succeeded.
Never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import textwrap
import traceback
from pathlib import Path

from geoclip_qgis.compat import WKB_POINT, FieldType
from model_utils.safe_files import atomic_path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# A few well-known places (name, lat, lon) for the offline embedding demo.
SAMPLE_PLACES = [
    ("Paris", 48.8566, 2.3522), ("Cairo", 30.0444, 31.2357), ("Tokyo", 35.6762, 139.6503),
    ("Sydney", -33.8688, 151.2093), ("Rio de Janeiro", -22.9068, -43.1729), ("Nairobi", -1.2921, 36.8219),
    ("Reykjavik", 64.1466, -21.9426), ("Lima", -12.0464, -77.0428), ("Mumbai", 19.0760, 72.8777),
    ("Vancouver", 49.2827, -123.1207), ("Kauai", 22.0964, -159.5261), ("Ulaanbaatar", 47.8864, 106.9057),
]


def say(text: str) -> None:
    print(textwrap.fill(text, width=100), flush=True)


def sample_layer(folder: Path):
    """The sample places as a GeoPackage point layer (EPSG:4326)."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransformContext,
        QgsFeature,
        QgsField,
        QgsFields,
        QgsGeometry,
        QgsPointXY,
        QgsVectorFileWriter,
        QgsVectorLayer,
    )

    fields = QgsFields()
    fields.append(QgsField("name", FieldType.STRING))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    path = folder / "sample_places.gpkg"
    writer = QgsVectorFileWriter.create(str(path), fields, WKB_POINT,
                                        QgsCoordinateReferenceSystem("EPSG:4326"), QgsCoordinateTransformContext(),
                                        options)
    for name, lat, lon in SAMPLE_PLACES:
        feature = QgsFeature(fields)
        feature.setAttributes([name])
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        writer.addFeature(feature)
    del writer
    return QgsVectorLayer(str(path), "sample places", "ogr")


def top_cells(raster: str, n: int) -> list[tuple[float, float, str]]:
    """The ``n`` cells of a probability raster holding the most mass: (lat, lon, "12%") at their centres."""
    import numpy as np
    from osgeo import gdal

    ds = gdal.Open(raster)
    values, (x0, dx, _, y0, _, dy) = ds.GetRasterBand(1).ReadAsArray(), ds.GetGeoTransform()
    ds = None
    flat = np.argsort(values, axis=None)[::-1][:n]
    rows, cols = np.unravel_index(flat, values.shape)
    return [(y0 + (r + 0.5) * dy, x0 + (c + 0.5) * dx, f"{values[r, c]:.0%}") for r, c in zip(rows, cols)]


def backbone_problem() -> str | None:
    """None if the CLIP backbone can be loaded, else the paragraph explaining what to do."""
    from model_utils.errors import BackboneUnavailable
    from model_utils.model import backbone

    try:
        backbone.resolve(backbone.clip_source())
    except BackboneUnavailable as exc:
        return str(exc)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "demo_output")
    parser.add_argument("--photos", type=Path, default=None, help="an extra folder of photos to geolocate")
    args = parser.parse_args()

    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    status = 1
    try:
        status = run(args)
    except Exception as exc:  # never a traceback for the user; the details go to a log file
        log = args.out / "demo_error.log"
        args.out.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        say(f"The demo failed: {exc}. Details: {log}")
    finally:
        from qgis.core import QgsProject

        QgsProject.instance().removeAllMapLayers()
        app.exitQgis()
    return status


def run(args) -> int:
    from qgis.core import QgsApplication

    sys.path.append(str(Path(QgsApplication.pkgDataPath()) / "python" / "plugins"))  # QGIS's processing
    import processing
    from processing.core.Processing import Processing
    from qgis.core import QgsProcessingException, QgsRasterLayer, QgsVectorLayer

    from geoclip_qgis.layers import style_prediction_points, style_probability_raster
    from geoclip_qgis.processing.provider import GeoClipProvider
    from model_utils.model.weights import wheel_package_dir
    from tools.samples.rendering import labelled_points_layer, render_layers, render_titled_map, world_basemap

    Processing.initialize()
    provider = GeoClipProvider()  # keep a Python reference while it is registered
    QgsApplication.processingRegistry().addProvider(provider)
    registry = QgsApplication.processingRegistry()
    run_dir = args.out / dt.datetime.now().strftime("run_%Y%m%d_%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, bool] = {}
    map_layers: list = []

    say(f"GeoCLIP demo -> {run_dir}")
    problem = backbone_problem()
    if problem:
        print()
        say("Photo geolocation and text queries skipped. " + problem)
        print()
    else:
        photos = [str(wheel_package_dir() / "images" / "Kauai.png")]
        params = {"PHOTOS": photos, "TOP_K": 5, "CELL_SIZE": 0.25, "BANDWIDTH_KM": 50, "OUTPUT_FOLDER": str(run_dir)}
        if args.photos:
            params["FOLDER"] = str(args.photos)
        try:
            out = processing.run("geoclip:geolocatephotos", params)
            say(f"Geolocated {out['N_PHOTOS']} photo(s) ({out['N_FAILED']} failed) -> {out['RUN_FOLDER']}")
            points = QgsVectorLayer(out["POINTS"], "predictions", "ogr")
            style_prediction_points(points)
            map_layers.append(points)
            for raster_path in out["RASTERS"][:1]:
                raster = QgsRasterLayer(raster_path, Path(raster_path).stem)
                style_probability_raster(raster)
                map_layers.append(raster)
            if out["REPORT_HTML"]:
                say(f"Accuracy report: {out['REPORT_HTML']}")
            results["geolocate photos"] = True
        except QgsProcessingException as exc:
            say(f"Photo geolocation failed: {exc}")
            results["geolocate photos"] = False
        try:
            out = processing.run("geoclip:geolocatetext", {"QUERIES": "Pyramids of Giza", "TOP_K": 5,
                                                           "CELL_SIZE": 0.25, "OUTPUT_FOLDER": str(run_dir)})
            say(f"Text query 'Pyramids of Giza' -> top-1 in {out['POINTS']}")
            raster = QgsRasterLayer(out["RASTERS"][0], "Pyramids of Giza")
            style_probability_raster(raster)
            map_layers.append(raster)
            results["text query"] = True
        except QgsProcessingException as exc:
            say(f"Text query failed: {exc}")
            results["text query"] = False

    places = sample_layer(run_dir)
    if registry.algorithmById("geoclip:gpsembeddings") is not None:
        try:
            target = str(run_dir / "sample_embeddings.gpkg")
            out = processing.run("geoclip:gpsembeddings", {"INPUT": places, "OUTPUT": target})
            emb = QgsVectorLayer(out["OUTPUT"], "embeddings", "ogr")
            say(f"GPS embeddings of {emb.featureCount()} sample places ({emb.fields().count()} fields) "
                f"-> {out['OUTPUT']}")
            results["GPS embeddings"] = emb.featureCount() == len(SAMPLE_PLACES)
        except QgsProcessingException as exc:
            say(f"GPS embedding export failed: {exc}")
            results["GPS embeddings"] = False
    try:
        out = processing.run("geoclip:placeslikehere", {"POINT": "2.3522,48.8566 [EPSG:4326]", "CELL_SIZE": 1.0,
                                                        "OUTPUT": str(run_dir / "places_like_paris.tif")})
        similar = QgsRasterLayer(out["OUTPUT"], "probability per 1° cell")
        style_probability_raster(similar)
        if problem:  # without photo results, the places raster is the main map's main layer
            map_layers.append(similar)
        say(f"'Places like Paris' raster -> {out['OUTPUT']}")
        query = labelled_points_layer([(48.8566, 2.3522, "Paris (query)")], "query place",
                                      {"name": "star", "color": "#111111", "outline_color": "#ffffff", "size": "5"})
        top = labelled_points_layer(top_cells(out["OUTPUT"], 6), "most likely 1° cells, % of the probability",
                                    {"name": "circle", "color": "#00000000", "outline_color": "#b91c1c",
                                     "outline_width": "0.6", "size": "4"})
        page = render_titled_map(
            [query, top, similar, world_basemap()], run_dir / "places_like_paris.png",
            "Places like Paris: where GeoCLIP would place a photo taken in Paris",
            "Probability over GeoCLIP's 100K photo locations, 300 km around Paris left out, 50 km kernel; sums to 1",
            [query, top, similar])
        with atomic_path(args.out / "places_like_paris.png") as tmp:
            tmp.write_bytes(page.read_bytes())
        say(f"Map: {args.out / 'places_like_paris.png'}")
        results["places like here"] = True
    except QgsProcessingException as exc:
        say(f"'Places like here' failed: {exc}")
        results["places like here"] = False

    png = render_layers([places, *map_layers, world_basemap()], run_dir / "demo_map.png")
    latest = args.out / "demo_map.png"
    with atomic_path(latest) as tmp:
        tmp.write_bytes(png.read_bytes())
    say(f"Map: {latest}")
    print()
    for part, ok in results.items():
        print(f"  {'ok    ' if ok else 'FAILED'}  {part}")
    ran_all = bool(results) and all(results.values())
    return 0 if ran_all else 1


if __name__ == "__main__":
    sys.exit(main())
