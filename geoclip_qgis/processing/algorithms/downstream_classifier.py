"""``geoclip:downstreamclassifier``: a linear probe on GeoCLIP embeddings of a layer's points/photos.

The layer is frozen into plain arrays first (feature ids, WGS84 lat/lon, label and photo values);
``model_utils.downstream.probe`` then builds the features, trains and scores the probe. Outputs (report
files and the optional prediction layer) are written only after everything was computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qgis.core import (
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from model_utils.safe_files import next_free

from ...compat import (
    FIELD_STRING,
    FLAG_ADVANCED,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    SOURCE_VECTOR_ANY,
    FieldType,
    plain,
)
from ...i18n import tr
from .. import definitions as d
from ..base import GeoClipAlgorithm, progress_callbacks, stages
from ..io.geometry import iter_latlon, layer_folder, photo_path
from ..io.outputs import ensure_writable_folder

FEATURE_CHOICES = [
    ("gps", "GeoCLIP GPS embedding"),
    ("latlon", "Raw latitude/longitude (baseline)"),
    ("image", "GeoCLIP image embedding (photo path field)"),
    ("gps+image", "GPS + image embeddings (fused)"),
]


@dataclass(frozen=True)
class ClassifierJob:
    """The classifier's options, read from the parameters on the main thread."""

    source: Any  # the QgsProcessingFeatureSource
    layer_name: str
    label_field: str
    photo_field: str  # "" when the features use no photos
    config: Any  # model_utils ProbeConfig
    out_dir: Path
    folder: Path | None  # the layer's folder: relative photo paths are resolved against it
    predictions: bool  # write the prediction layer
    model_choices: tuple[tuple[str, Any], ...]


@dataclass
class FrozenLayer:
    """The layer as plain arrays: one row per feature with a usable point."""

    fids: np.ndarray
    latlon: np.ndarray
    labels: list
    photos: list | None
    skipped: dict[str, int]


def _free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``… when the input layer already has a field called that."""
    candidate = next_free(name, lambda c: c.lower() in taken)
    taken.add(candidate.lower())
    return candidate


class DownstreamClassifier(GeoClipAlgorithm):
    """Train and score a logistic-regression probe on GeoCLIP GPS / image embeddings of a layer."""


    def name(self) -> str:
        return "downstreamclassifier"

    def displayName(self) -> str:
        return tr("Train downstream classifier on GeoCLIP embeddings")

    def shortHelpString(self) -> str:
        return (
            tr("Trains a linear classifier (scikit-learn logistic regression; one-vs-rest for tags) on "
            "GeoCLIP embeddings of a layer's features and reports how well it predicts a label field, "
            "as in the GeoCLIP paper's Geo-tagged NUS-WIDE experiment.\n\n"
            "<b>Input layer</b>: any vector layer (tick 'Selected features only' to use a selection). "
            "Points are used as they are; lines by their centroid, polygons by a point on their surface; "
            "every CRS is transformed to WGS84 first. Features with a NULL or empty geometry are skipped "
            "and counted in the log.\n"
            "<b>Label field</b>: the class of each feature. Empty (NULL or blank) labels are not used for "
            "training or scoring, but still get a prediction. Classes with fewer than 2 labelled features "
            "are left out and listed.\n"
            "<b>Multi-label separator</b>: empty = one label per feature (scored by accuracy and macro-F1). "
            "Otherwise the field holds tags split by this text, e.g. 'sky|water|clouds' with '|' "
            "(scored by mean average precision over tags; tags without a positive test feature are "
            "left out of the mean and listed).\n"
            "<b>Features</b>: GeoCLIP GPS embedding (512-d, needs only the GeoCLIP weights: works offline); "
            "raw latitude/longitude (the baseline to beat); GeoCLIP image embedding of the photo in the "
            "photo path field (needs the CLIP backbone); or both embeddings side by side.\n"
            "<b>Photo path field</b>: for the image features. Relative paths are resolved against the "
            "layer's folder. Features whose photo is missing or unreadable are skipped and counted; if "
            "no photo can be read, the run stops with the first rows and paths named.\n"
            "<b>Test fraction / random seed</b>: the held-out share of labelled features, split per class "
            "(stratified) where the class counts allow; the same seed gives the same split.\n"
            "<b>Output report folder</b>: receives &lt;name&gt;.html (self-contained), "
            "&lt;name&gt;_classes.csv (per class precision, recall, F1, AP) and &lt;name&gt;_summary.csv; "
            "existing reports are never overwritten.\n"
            "<b>Predictions</b> (optional): the input features with their attributes plus pred_label "
            "(tags joined by the separator for multi-label), pred_top, pred_prob (probability of "
            "pred_top) and split (train, test, unlabelled, or excluded for rare classes).")
        )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(
            d.INPUT, tr("Input layer"), [SOURCE_VECTOR_ANY]))
        self.addParameter(QgsProcessingParameterField(
            d.LABEL_FIELD, tr("Label field"), parentLayerParameterName=d.INPUT))
        separator = QgsProcessingParameterString(
            d.SEPARATOR, tr("Multi-label separator (empty = one label per feature)"), defaultValue="", optional=True)
        separator.setHelp("Text between tags in the label field, e.g. '|' or ','; empty for single labels.")
        self.addParameter(separator)
        self.addParameter(QgsProcessingParameterEnum(
            d.FEATURES, tr("Features"), options=[label for _, label in FEATURE_CHOICES], defaultValue=0))
        self.addParameter(QgsProcessingParameterField(
            d.PHOTO_FIELD, tr("Photo path field (for image features)"), parentLayerParameterName=d.INPUT,
            type=FIELD_STRING, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            d.TEST_FRACTION, tr("Test fraction"), NUMBER_DOUBLE,
            defaultValue=0.3, minValue=0.05, maxValue=0.95))
        self.addParameter(QgsProcessingParameterNumber(
            d.SEED, tr("Random seed"), NUMBER_INTEGER, defaultValue=0, minValue=0))
        c = QgsProcessingParameterNumber(
            d.REGULARIZATION_C, tr("Inverse regularisation strength C"), NUMBER_DOUBLE,
            defaultValue=10.0, minValue=1e-6)
        c.setFlags(c.flags() | FLAG_ADVANCED)
        self.addParameter(c)
        self.add_model_parameters(image_side=True)
        self.addParameter(QgsProcessingParameterFolderDestination(d.OUTPUT_FOLDER, tr("Output report folder")))
        self.addParameter(QgsProcessingParameterFeatureSink(
            d.PREDICTIONS, tr("Predictions"), SOURCE_VECTOR_ANY, optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputFile(d.REPORT_HTML, tr("Report (HTML)")))
        self.addOutput(QgsProcessingOutputFile(d.CLASSES_CSV, tr("Per-class scores (CSV)")))
        self.addOutput(QgsProcessingOutputFile(d.SUMMARY_CSV, tr("Summary (CSV)")))
        for key, label in ((d.ACCURACY, "Accuracy (single-label)"), (d.MACRO_F1, "Macro-F1"),
                           (d.MEAN_AP, "Mean average precision (multi-label)"), (d.N_TRAIN, "Training features"),
                           (d.N_TEST, "Test features"), (d.N_CLASSES, "Classes"),
                           (d.N_SKIPPED, "Features skipped (geometry, label, photo)")):
            self.addOutput(QgsProcessingOutputNumber(key, label))

    # ------------------------------------------------------------------ parameters -> a frozen job (main thread)
    def prepare(self, parameters, context, feedback) -> ClassifierJob:
        source = self.parameterAsSource(parameters, d.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, d.INPUT))
        layer_name = source.sourceName()
        label_field = self.parameterAsString(parameters, d.LABEL_FIELD, context)
        photo_field = self.parameterAsString(parameters, d.PHOTO_FIELD, context)
        names = source.fields().names()
        for role, field in (("label", label_field), ("photo path", photo_field)):
            if field and field not in names:
                raise QgsProcessingException(f"The {role} field '{field}' is not in layer '{layer_name}' "
                                             f"(fields: {', '.join(names) or 'none'}).")
        kind = FEATURE_CHOICES[self.parameterAsEnum(parameters, d.FEATURES, context)][0]
        if "image" in kind and not photo_field:
            raise QgsProcessingException(f"The features '{kind}' need a photo path field: choose the field of "
                                         f"'{layer_name}' that holds each feature's photo path.")
        if photo_field and "image" not in kind:
            feedback.pushInfo(f"The photo field '{photo_field}' is not used by the '{kind}' features.")
            photo_field = ""
        out_dir = ensure_writable_folder(self.parameterAsString(parameters, d.OUTPUT_FOLDER, context))

        from model_utils.downstream.probe import ProbeConfig

        config = ProbeConfig(
            features=kind, separator=self.parameterAsString(parameters, d.SEPARATOR, context) or "",
            test_fraction=self.parameterAsDouble(parameters, d.TEST_FRACTION, context),
            seed=self.parameterAsInt(parameters, d.SEED, context),
            c=self.parameterAsDouble(parameters, d.REGULARIZATION_C, context),
            label_name=label_field, photo_name=photo_field or "photo")
        try:
            config.check()
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        return ClassifierJob(
            source=source, layer_name=layer_name, label_field=label_field, photo_field=photo_field, config=config,
            out_dir=out_dir, folder=layer_folder(self.parameterAsVectorLayer(parameters, d.INPUT, context)),
            predictions=parameters.get(d.PREDICTIONS) not in (None, ""),
            model_choices=tuple(sorted(self.model_choices(parameters, context).items())))

    # ------------------------------------------------------------------ the layer -> plain arrays
    def _freeze(self, job: ClassifierJob, context, feedback) -> FrozenLayer:
        """Feature ids, WGS84 lat/lon, raw labels and photo paths of every feature with a usable point."""
        source, label_field, photo_field, base = job.source, job.label_field, job.photo_field, job.folder
        request = QgsFeatureRequest()
        wanted = [f for f in (label_field, photo_field) if f]
        request.setSubsetOfAttributes(wanted, source.fields())
        fids, latlon, labels, photos = [], [], [], []
        skipped: dict[str, int] = {}
        total = max(source.featureCount(), 1)
        for i, (feature, point, reason) in enumerate(iter_latlon(source, context, feedback, request=request)):
            if point is None:
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                fids.append(feature.id())
                latlon.append(point)
                labels.append(plain(feature[label_field]))
                if photo_field:
                    photos.append(photo_path(feature[photo_field], base))
            if i % 1000 == 0:
                feedback.setProgress(100.0 * i / total)
        if feedback.isCanceled():
            raise QgsProcessingException("Canceled: no outputs were written.")
        return FrozenLayer(fids=np.asarray(fids, dtype=np.int64),
                           latlon=np.asarray(latlon, dtype=np.float64).reshape(-1, 2), labels=labels,
                           photos=photos if photo_field else None, skipped=skipped)

    # ------------------------------------------------------------------ run
    def process(self, parameters, context, feedback):
        job: ClassifierJob = self.job
        source, layer_name, config = job.source, job.layer_name, job.config

        # 1. freeze the layer into plain arrays (three stages of one bar: read, probe, write)
        steps = stages(feedback, 3)
        frozen = self._freeze(job, context, steps)
        for reason, count in frozen.skipped.items():
            feedback.reportError(f"{count} feature(s) of '{layer_name}' skipped: {reason}.", False)
        if len(frozen.fids) == 0:
            raise QgsProcessingException(
                f"Layer '{layer_name}' has no feature with a usable geometry "
                f"({sum(frozen.skipped.values())} skipped); nothing to classify.")
        latlon = frozen.latlon
        from model_utils.geo import invalid_latlon

        bad = invalid_latlon(latlon)
        if bad.any():
            fids = ", ".join(str(f) for f in frozen.fids[bad][:10])
            raise QgsProcessingException(
                f"Layer '{layer_name}': {int(bad.sum())} feature(s) lie outside the valid latitude/longitude range "
                f"once in WGS84 (fid {fids}{', …' if bad.sum() > 10 else ''}). Is the layer's CRS "
                f"({source.sourceCrs().authid() or 'unknown'}) right, or are x and y swapped?")
        task = f"multi-label, separator {config.separator!r}" if config.multi_label else "single-label"
        feedback.pushInfo(f"{len(frozen.fids)} feature(s) of '{layer_name}'; features: {config.features}; {task}")

        # 2. compute on plain data
        steps.setCurrentStep(1)
        result = self._compute(job, frozen, steps)
        self._log(result, feedback)
        not_used = sum(n for reason, n in result.skipped.items() if reason != "rare class")
        result.skipped = {**frozen.skipped, **result.skipped}  # the report lists geometry skips too

        # 3. write outputs (only now that everything succeeded)
        steps.setCurrentStep(2)
        outputs: dict = {}
        if job.predictions:
            outputs[d.PREDICTIONS] = self._write_predictions(result, frozen.fids, source, parameters,
                                                                context, feedback)
        from model_utils.downstream.report import write_reports

        try:
            paths = write_reports(result, job.out_dir)
        except OSError as exc:
            raise QgsProcessingException(f"Could not write the report into {job.out_dir}: {exc}") from exc
        feedback.pushInfo(f"Report: {paths.html}")
        feedback.setProgress(100)
        skipped_total = sum(frozen.skipped.values()) + not_used
        outputs.update({
            d.OUTPUT_FOLDER: str(job.out_dir), d.REPORT_HTML: str(paths.html), d.CLASSES_CSV: str(paths.classes_csv),
            d.SUMMARY_CSV: str(paths.summary_csv), d.ACCURACY: result.accuracy, d.MACRO_F1: result.macro_f1,
            d.MEAN_AP: result.mean_ap, d.N_TRAIN: result.n_train, d.N_TEST: result.n_test,
            d.N_CLASSES: len(result.classes), d.N_SKIPPED: skipped_total,
        })
        return outputs

    def _compute(self, job: ClassifierJob, frozen: FrozenLayer, feedback):
        from model_utils.downstream.features import check_photo_paths
        from model_utils.downstream.probe import run_probe
        from model_utils.errors import Canceled, GeoClipError

        try:
            config = job.config
            if config.needs_images:  # fail on a photo field pointing nowhere before loading any backbone
                check_photo_paths(frozen.photos, [f"fid {f}" for f in frozen.fids], config.photo_name)
            model = self.load_model(dict(job.model_choices), feedback) if config.needs_model else None
            progress, is_canceled = progress_callbacks(feedback)
            result = run_probe(config, frozen.labels, frozen.latlon, frozen.photos, model,
                               row_ids=[f"fid {f}" for f in frozen.fids], progress=progress,
                               is_canceled=is_canceled)
        except Canceled as exc:
            raise QgsProcessingException("Canceled: no outputs were written.") from exc
        except (ValueError, GeoClipError) as exc:
            raise QgsProcessingException(f"Layer '{job.layer_name}': {exc}") from exc
        if feedback.isCanceled():
            raise QgsProcessingException("Canceled: no outputs were written.")
        return result

    @staticmethod
    def _log(result, feedback) -> None:
        name, value = result.headline
        feedback.pushInfo(f"{result.task}: {len(result.classes)} classes, {result.n_train} training and "
                          f"{result.n_test} test features; {name} = {value:.4f}, macro-F1 = {result.macro_f1:.4f}")
        for reason, count in result.skipped.items():
            feedback.pushInfo(f"{count} feature(s) not used for training/scoring: {reason}")
        if result.dropped_classes:
            feedback.reportError(f"{len(result.dropped_classes)} class(es) with fewer than "
                                 f"{result.config.min_rows_per_class} labelled features were left out: "
                                 f"{', '.join(result.dropped_classes[:20])}", False)
        if result.ap_excluded:
            feedback.reportError(f"Tags without a positive test feature (not in the mAP): "
                                 f"{', '.join(result.ap_excluded[:20])}", False)
        for warning in result.warnings:
            feedback.reportError(warning, False)

    def _write_predictions(self, result, fids: np.ndarray, source, parameters, context, feedback) -> str:
        fields = QgsFields(source.fields())
        taken = {n.lower() for n in fields.names()}
        new_names = [_free_name(n, taken) for n in ("pred_label", "pred_top", "pred_prob", "split")]
        for name, kind in zip(new_names, (FieldType.STRING, FieldType.STRING, FieldType.DOUBLE, FieldType.STRING)):
            fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(parameters, d.PREDICTIONS, context, fields, source.wkbType(),
                                          source.sourceCrs())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, d.PREDICTIONS))
        predicted = result.predicted()
        by_fid = {int(fids[row]): (*predicted[k], str(result.split[k])) for k, row in enumerate(result.rows)}
        for feature in source.getFeatures():
            if feedback.isCanceled():
                raise QgsProcessingException("Canceled while writing the prediction layer.")
            values = by_fid.get(feature.id())
            if values is None:
                continue
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            label, top, prob, split = values
            out.setAttributes(list(feature.attributes()) + [label or None, top, prob, split])
            if not sink.addFeature(out, QgsFeatureSink.Flag.FastInsert):
                raise QgsProcessingException(f"Could not write feature {feature.id()} to the prediction layer: "
                                             f"{sink.lastError()}")
        feedback.pushInfo(f"Prediction layer: {len(by_fid)} feature(s) with {', '.join(new_names)}")
        return dest
