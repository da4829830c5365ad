"""``geoclip:geolocateraycluster``: geolocate a photo archive as a Ray job, locally or on a cluster.

The job is ``python -m model_utils.batch geolocate`` submitted through Ray's Job Submission API (see
``model_utils.batch.submit``); this algorithm follows its log and progress, stops it on Cancel, and loads its
results: the top-1 points and the credible regions (layers of one GeoPackage, which every QGIS reads) and the
archive density raster. Each photo's answer (temperature, raster, regions) is ``model_utils.analysis``'s, as in a
local run. Ray is optional: without it this algorithm explains what to install and every other one works as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from model_utils.constants import CPU_PRECISIONS

from ...compat import FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER
from ...i18n import tr
from ...layers import load_on_completion
from .. import definitions as d
from ..base import GeoClipAlgorithm
from ..geolocation.parameters import levels_parameter, parse_levels, temperature_parameter
from ..io.ray_outputs import ray_results

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class ClusterRun:
    """The job's command line and where it is sent, read from the parameters on the main thread."""

    address: str  # the dashboard's address; empty: a Ray started on this machine for this run
    token: str
    args: tuple[str, ...]
    out: Path
    python: str  # the interpreter a local Ray runs on (QGIS's own)


class GeolocateRayCluster(GeoClipAlgorithm):
    """Photos -> top-k locations and an archive density raster, computed by a Ray job."""

    def name(self) -> str:
        return "geolocateraycluster"

    def displayName(self) -> str:  # noqa: N802
        return tr("Geolocate photos on a Ray cluster")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Geolocates a whole photo archive as a Ray job: on this machine (address empty: Ray is started "
            "for the run and stopped after it) or on a Ray cluster (its dashboard address, "
            "http://head:8265). Each worker loads the model once; GeoCLIP's 100K gallery is embedded once and "
            "shared. Results: GeoParquet shards (one row per photo and rank, error rows for files that "
            "failed), the top-1 points as a GeoPackage, and an archive density raster: where the archive's "
            "photos come from (each cell: the expected number of photos taken in it).\n\n"
            "On a cluster, the photos, the output folder and a local CLIP backbone folder must be visible to "
            "the cluster's nodes under the same paths (shared storage). Cancel stops the job on the cluster; "
            "finished shards are kept, and a run with 'Resume' on the same folder finishes the job.\n\n"
            "HEIC / HEIF photos are decoded on the nodes like JPEGs (they need pillow-heif); files of the folder that "
            "are not photos are counted by reason in the log and summary.json. The density raster and the regions keep "
            "each photo's probability on land cells unless 'on land only' is unticked (photos taken at sea).\n\n"
            "Credible regions and temperature work as in 'Geolocate photos' (each photo's answer is computed by the "
            "same code on the workers): the regions come from each photo's raster on the world grid of the density "
            "raster's cells and load as outlines above it; a temperature fitted there can be used here.\n\n"
            "Needs Ray in QGIS's Python: pip install 'ray[data,default]'.")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        address = QgsProcessingParameterString(
            d.ADDRESS, tr("Ray cluster dashboard address (empty: run on this machine)"), optional=True)
        address.setHelp("e.g. http://head-node:8265; the Job Submission API is served by the dashboard.")
        self.addParameter(address)
        photos = QgsProcessingParameterString(
            d.PHOTOS, tr("Photos: a folder (searched recursively), a glob pattern or a .parquet manifest"))
        photos.setHelp("A manifest is a Parquet file with a 'path' column. On a cluster, paths as the nodes see them.")
        self.addParameter(photos)
        self.addParameter(QgsProcessingParameterNumber(
            d.TOP_K, tr("Locations per photo (top-k)"), NUMBER_INTEGER, defaultValue=5, minValue=1, maxValue=100))
        self.addParameter(QgsProcessingParameterNumber(
            d.WORKERS, tr("Workers (model copies running at once)"), NUMBER_INTEGER, defaultValue=1, minValue=1,
            maxValue=10000))
        gpus = QgsProcessingParameterNumber(
            d.GPUS_PER_WORKER, tr("GPUs per worker (0: CPU)"), NUMBER_DOUBLE, defaultValue=0.0, minValue=0.0,
            maxValue=16.0)
        gpus.setHelp("Fractions share a GPU between workers, e.g. 0.5.")
        self.addParameter(gpus)
        self.addParameter(QgsProcessingParameterBoolean(
            d.RESUME, tr("Resume the job already in the output folder"), defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(
            d.ON_LAND, tr("Density and regions on land only (untick for photos taken at sea)"), defaultValue=True))
        add_answer_parameters(self)
        advanced = [
            QgsProcessingParameterNumber(d.CPUS_PER_WORKER, tr("CPU cores per worker"), NUMBER_DOUBLE, defaultValue=1.0,
                                         minValue=0.1, maxValue=256.0),
            QgsProcessingParameterNumber(d.BATCH_SIZE, tr("Photos per forward pass"), NUMBER_INTEGER, defaultValue=8,
                                         minValue=1, maxValue=1024),
            QgsProcessingParameterNumber(d.SHARD_SIZE, tr("Photos per output shard (a lost worker redoes one shard)"),
                                         NUMBER_INTEGER, defaultValue=64, minValue=1, maxValue=100000),
            QgsProcessingParameterString(d.CLUSTER_AUTH,
                                         tr("Cluster token (empty: Ray's own lookup, RAY_AUTH_TOKEN)"), optional=True),
            QgsProcessingParameterString(d.CLIP_MODEL, tr("CLIP backbone (repo id or folder the nodes see; empty "
                                                             "= panel setting / ViT-L/14)"), optional=True),
            QgsProcessingParameterString(d.WEIGHTS, tr("GeoCLIP weights folder on the nodes (empty = the geoclip "
                                                          "wheel)"), optional=True),
            QgsProcessingParameterEnum(d.PRECISION, tr("Backbone precision"), options=CPU_PRECISIONS,
                                       defaultValue=0),
        ]
        for param in advanced:
            param.setFlags(param.flags() | FLAG_ADVANCED)
            self.addParameter(param)
        self.addParameter(QgsProcessingParameterFolderDestination(d.OUTPUT, tr("Output folder (new or empty)")))
        self.addOutput(QgsProcessingOutputVectorLayer(d.POINTS, tr("Top-1 points")))
        self.addOutput(QgsProcessingOutputRasterLayer(d.DENSITY_RASTER, tr("Archive density raster")))

    def prepare(self, parameters, context, feedback) -> ClusterRun:
        from model_utils.batch.plan import output_problem
        from model_utils.batch.submit import ray_missing_message

        from ... import settings

        missing = ray_missing_message()
        if missing:
            raise QgsProcessingException(missing)
        photos = self.parameterAsString(parameters, d.PHOTOS, context).strip()
        if not photos:
            raise QgsProcessingException("Give the photos: a folder, a glob pattern or a .parquet manifest.")
        out = Path(self.parameterAsString(parameters, d.OUTPUT, context)).absolute()
        resume = self.parameterAsBoolean(parameters, d.RESUME, context)
        problem = output_problem(out, resume)
        if problem:
            raise QgsProcessingException(problem.replace("--resume", "'Resume'").replace("--out folder",
                                                                                          "output folder"))
        args = ["geolocate", "--photos", photos, "--out", str(out),
                "--top-k", str(self.parameterAsInt(parameters, d.TOP_K, context)),
                "--workers", str(self.parameterAsInt(parameters, d.WORKERS, context)),
                "--gpus-per-worker", f"{self.parameterAsDouble(parameters, d.GPUS_PER_WORKER, context):g}",
                "--cpus-per-worker", f"{self.parameterAsDouble(parameters, d.CPUS_PER_WORKER, context):g}",
                "--batch-size", str(self.parameterAsInt(parameters, d.BATCH_SIZE, context)),
                "--shard-size", str(self.parameterAsInt(parameters, d.SHARD_SIZE, context)),
                "--precision", CPU_PRECISIONS[self.parameterAsEnum(parameters, d.PRECISION, context)]]
        clip = settings.resolve(settings.CLIP_MODEL, self.parameterAsString(parameters, d.CLIP_MODEL, context))
        weights = settings.resolve(settings.WEIGHTS, self.parameterAsString(parameters, d.WEIGHTS, context))
        args += (["--clip-model", clip] if clip else []) + (["--weights", weights] if weights else [])
        args += ["--resume"] if resume else []
        args += [] if self.parameterAsBoolean(parameters, d.ON_LAND, context) else ["--over-sea"]
        args += answer_arguments(self, parameters, context)
        address = self.parameterAsString(parameters, d.ADDRESS, context).strip()
        python = ""
        if not address:
            from ...setup.installer import python_executable

            try:
                python = python_executable()
            except RuntimeError as exc:
                raise QgsProcessingException(f"Cannot start Ray on this machine: {exc}") from None
        return ClusterRun(address=address, token=self.parameterAsString(parameters, d.CLUSTER_AUTH, context).strip(),
                          args=tuple(args), out=out, python=python)

    def process(self, parameters, context, feedback) -> dict:
        from model_utils.batch.submit import ClusterError

        run: ClusterRun = self.job
        try:
            self._run_job(run, feedback)
        except ClusterError as exc:
            raise QgsProcessingException(str(exc)) from None
        except (RuntimeError, ConnectionError) as exc:  # what Ray's HTTP client raises when the dashboard goes away
            raise QgsProcessingException(f"Lost contact with the Ray cluster: {exc}. The job may still run there; "
                                         f"its finished shards stay in {run.out} (run again with 'Resume').") from None
        points, has_regions = ray_results(run.out, feedback)
        density = run.out / "density.tif"
        group = f"GeoCLIP Ray {run.out.name}"
        if has_regions:  # above the density raster, below the points: as a local run's
            load_on_completion(context, f"{points}|layername=credible_regions", "Credible regions", group, "regions")
        if points is not None:
            load_on_completion(context, f"{points}|layername=predictions", "Top-1 locations", group, "archive",
                               output_name=d.POINTS)
        load_on_completion(context, str(density), "Archive density (photos per cell)", group, "probability",
                           output_name=d.DENSITY_RASTER, raster=True)
        return {d.OUTPUT: str(run.out), d.POINTS: f"{points}|layername=predictions" if points else "",
                d.DENSITY_RASTER: str(density)}

    @staticmethod
    def _run_job(run: ClusterRun, feedback) -> None:
        """Submit, follow the log and progress, stop on Cancel; a Ray started here is stopped in any case."""
        from model_utils.batch.plan import remove_partial_files
        from model_utils.batch.submit import TERMINAL, ClusterJob, LocalHead

        head = None
        try:
            address, token = run.address, run.token
            if not address:
                feedback.pushInfo("Starting Ray on this machine (stopped again when the run ends)…")
                head = LocalHead(run.python)
                head.start(feedback.isCanceled)
                address, token = head.address, head.token
            job = ClusterJob(address, token or None)
            job_id = job.submit(list(run.args))
            feedback.pushInfo(f"Ray job {job_id} submitted to {address}")
            status = job.status()
            while status not in TERMINAL:
                if feedback.isCanceled():
                    final = job.stop()
                    remove_partial_files(run.out)
                    done = len(list(run.out.glob("part-*.parquet")))
                    raise QgsProcessingException(
                        f"Canceled: Ray job {job_id} was stopped on the cluster ({final}). {done} finished shard(s) "
                        f"are kept in {run.out}; run again with 'Resume' to finish the job.")
                for line in job.new_log_lines():
                    feedback.pushInfo(line)
                if job.progress:
                    feedback.setProgress(99.0 * job.progress[0] / max(job.progress[1], 1))
                time.sleep(POLL_SECONDS)
                status = job.status()
            for line in job.new_log_lines():
                feedback.pushInfo(line)
            if status != "SUCCEEDED":
                raise QgsProcessingException(f"Ray job {job_id} ended {status}:\n{job.failure()}")
        finally:
            if head is not None:
                head.stop()


def add_answer_parameters(alg: GeoClipAlgorithm) -> None:
    """Credible levels and temperature, as the local geolocation run takes them (the job's workers run the same
    per-photo analysis)."""
    alg.addParameter(levels_parameter(
        "Per photo, the smallest area holding that share of its probability (on the world grid of the density "
        "raster's cells), loaded as outlines like a local run's. Levels between 0 and 1 (or 50%, 90%), separated by "
        "commas; empty: none."))
    alg.addParameter(temperature_parameter(
        "Spreads (above 1) or sharpens (below 1) each photo's probabilities before they are kept, summed into the "
        "density and made into regions; 'Geolocate photos' can fit it."))


def answer_arguments(alg: GeoClipAlgorithm, parameters, context) -> list[str]:
    """The batch job's --credible-levels and --temperature for the parameters (a bad level is refused here)."""
    levels = parse_levels(alg.parameterAsString(parameters, d.CREDIBLE_LEVELS, context))
    temperature = alg.parameterAsDouble(parameters, d.TEMPERATURE, context) or d.DEFAULT_TEMPERATURE
    return ((["--credible-levels", ",".join(f"{level:g}" for level in levels)] if levels else [])
            + (["--temperature", f"{temperature:g}"] if temperature != d.DEFAULT_TEMPERATURE else []))
