"""``geoclip:geolocatetext``: text queries ("Pyramids of Giza") -> probability rasters + top-k points.

The same run folder, rasters, points layer and styles as photo geolocation; only the input side
differs: each query goes through CLIP's text tower instead of its vision tower, then through
GeoCLIP's head and against the same GPS gallery.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from ...i18n import tr
from .. import definitions as d
from .. import geolocation
from ..base import GeoClipAlgorithm
from ..geolocation import InputKind

MAX_QUERIES = 10_000
LABEL_CHARS = 60


def _label(source: str) -> str:
    text = " ".join(source.split())
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _group_title(result: dict) -> str:
    more = result["n_ok"] - 1
    return f"Text: {result['first']}" + (f" (+{more} more)" if more > 0 else "")


class GeolocateText(GeoClipAlgorithm):
    """Where on Earth does a description point to? GeoCLIP's answer for text, as rasters and points."""

    KIND = InputKind(
        noun="query", plural="queries", count_output=d.N_QUERIES, default_batch=d.DEFAULT_TEXT_BATCH,
        source_fields=("query", "label"),
        label=_label,
        stem=lambda source: _label(source).rstrip("…"), group_title=_group_title,
        load_tower=lambda model, progress=None, is_canceled=None: model.load_text_tower(progress, is_canceled),
        predictions=lambda model, items, top_k, batch, progress, is_canceled, gallery: model.iter_predict_text(
            items, top_k=top_k, batch_size=batch, progress=progress, is_canceled=is_canceled, gallery=gallery))

    def name(self) -> str:
        return "geolocatetext"

    def displayName(self) -> str:  # noqa: N802
        return tr("Geolocate text queries")

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            tr("Estimates where a text description points to on Earth (\"Pyramids of Giza\", \"a snowy "
            "mountain village\", \"tropical beach with palm trees\"). GeoCLIP trains on photos, but CLIP puts "
            "captions and photos in one embedding space, so a query's CLIP text features go through GeoCLIP's "
            "image head and are compared with the 100,000-point GPS gallery, giving a probability for every "
            "gallery point (the GeoCLIP paper's text-query experiment).\n\n"
            "<b>Queries</b>: one per line; and/or a UTF-8 text file with one query per line. Empty lines are "
            "ignored. CLIP reads at most 77 tokens (about 50 words); longer queries are cut there.\n\n"
            "Outputs, in a new subfolder of the output folder (never overwriting earlier runs): one probability "
            "raster per query (GeoTIFF, EPSG:4326; see 'Geolocate photos' for the kernel and density options) "
            "and predictions.gpkg with the top-k guesses of every query (query, label, rank, prob, lat, lon). "
            "'GPS gallery' = Regional ranks against a dense grid over the raster extent for city-scale zoom "
            "(see 'Geolocate photos').\n\n"
            "Needs the CLIP ViT-L/14 text tower (the same backbone as for photos: downloaded once, or a local "
            "folder in Advanced parameters or the GeoCLIP panel's Setup tab).")
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        queries = QgsProcessingParameterString(d.QUERIES, tr("Text queries (one per line)"), multiLine=True,
                                               optional=True)
        queries.setHelp("Places, landmarks or scene descriptions, one per line, e.g. 'Pyramids of Giza'.")
        self.addParameter(queries)
        query_file = QgsProcessingParameterFile(d.QUERY_FILE, tr("Text file of queries (one per line)"),
                                                extension="txt", optional=True)
        query_file.setHelp("A UTF-8 text file; each non-empty line is one query.")
        self.addParameter(query_file)
        geolocation.add_parameters(self, self.KIND)

    NO_INPUT = ("No text queries given: type one or more queries (one per line, e.g. 'Pyramids of Giza'), or "
                "choose a text file with one query per line.")

    def has_input(self, parameters, context) -> bool:
        return bool((self.parameterAsString(parameters, d.QUERIES, context) or "").strip()
                    or self.parameterAsFile(parameters, d.QUERY_FILE, context))

    def inputs(self, parameters, context, feedback) -> list[str]:
        lines = (self.parameterAsString(parameters, d.QUERIES, context) or "").splitlines()
        path = self.parameterAsFile(parameters, d.QUERY_FILE, context)
        if path:
            lines += _read_query_file(Path(path))
        queries = [" ".join(line.split()) for line in lines if line.strip()]
        if not queries:
            raise QgsProcessingException(self.NO_INPUT)
        if len(queries) > MAX_QUERIES:
            raise QgsProcessingException(
                f"{len(queries)} queries is more than one run takes ({MAX_QUERIES}); split them into several runs.")
        return queries


    def prepare(self, parameters, context, feedback) -> geolocation.GeolocationJob:
        return geolocation.prepare(self, self.KIND, self.inputs(parameters, context, feedback), parameters, context,
                                   feedback)

    def process(self, parameters, context, feedback) -> dict:
        return geolocation.run(self, self.KIND, self.job, context, feedback)

def _read_query_file(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError as exc:
        raise QgsProcessingException(f"Query file {path} does not exist. Choose an existing .txt file.") from exc
    except UnicodeDecodeError as exc:
        raise QgsProcessingException(
            f"Query file {path} is not UTF-8 text (byte {exc.start}: {exc.reason}). Save it as UTF-8 and retry."
        ) from exc
    except OSError as exc:
        raise QgsProcessingException(f"Query file {path} could not be read: {exc.strerror or exc}.") from exc
