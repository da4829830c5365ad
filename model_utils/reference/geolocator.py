"""GeoCLIP with a reference collection: each photo's GeoCLIP answer fused with its nearest reference photos.

The photo goes through the same pipeline as ``GeoCLIP.predict`` (one backbone forward, GeoCLIP's softmax over
its gallery); its embedding is then matched against the collection and the two are fused (``fusion``). The
collection's fit is used when it belongs to this collection; otherwise it is fitted first (seconds for
thousands of photos) and kept in the collection, to be saved with ``save_fit``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np

from ..photos.images import DEFAULT_MAX_PIXELS
from ..progress import IsCanceled, Progress
from .fit import FitResult, fit_collection
from .fusion import FusedPrediction, FusionParams, fuse
from .index import CollectionError, ReferenceCollection, load_collection, model_key, write_index
from .match import top_matches

log = logging.getLogger(__name__)


class ReferenceGeolocator:
    """``ReferenceGeolocator(model, collection).predict(photos)``: FusedPredictions with their matches.

    ``collection`` is a ReferenceCollection or the path of its index. ``params`` overrides the fitted fusion
    (e.g. a fixed weight for an experiment).
    """

    def __init__(self, model, collection: ReferenceCollection | str | os.PathLike,
                 params: FusionParams | None = None) -> None:
        self.model = model
        self.collection = collection if isinstance(collection, ReferenceCollection) else load_collection(collection)
        if len(self.collection) == 0:
            raise CollectionError("The reference collection is empty: build it from photos with a position first.")
        self._params = params
        self.fit: FitResult | None = None
        self._gallery_latlon: np.ndarray | None = None
        self._top_k = 5
        self._checked = False

    @property
    def params(self) -> FusionParams:
        """The fusion in use: given, else the collection's own fit (fitted now if it has none for its contents)."""
        if self._params is None:
            saved = self.collection.fit
            if saved and saved.get("content") == self.collection.content_digest():
                self.fit = FitResult.from_dict(saved)
            else:
                self.fit = fit_collection(self.model, self.collection)
                self.collection = self.collection.with_fit(self.fit.to_dict())
                log.info("GeoCLIP reference collection fitted:\n%s", self.fit.table())
            self._params = self.fit.params
        return self._params

    def check_model(self) -> None:
        """The collection must have been embedded by this model's backbone and head, or matches mean nothing."""
        if self._checked:
            return
        self.model.load_backbone()
        self._checked = self.collection.model == model_key(self.model)
        if not self._checked:
            raise CollectionError("The reference collection was embedded with another CLIP backbone or GeoCLIP head "
                                  "than the model in use; build it again with this model (only new content is "
                                  "embedded when the index matches).")

    def save_fit(self, index: str | os.PathLike) -> None:
        """Keep the fit in the collection's index, so the next session does not fit again."""
        _ = self.params
        write_index(self.collection, index)

    def fuse_batch(self, preds: list, feats) -> list[FusedPrediction]:
        """GeoCLIP's predictions for a batch and their embeddings -> the fused predictions (``post`` hook)."""
        params = self.params
        emb = feats.float().cpu().numpy()
        idx, sims = top_matches(emb, self.collection.embeddings, params.m)
        gallery = self._gallery_latlon
        return [fuse(pred, gallery, self.collection.paths, self.collection.latlon, idx[i], sims[i], params,
                     self._top_k) for i, pred in enumerate(preds)]

    def iter_predict(self, images: Iterable, top_k: int = 5, batch_size: int = 8,
                     max_pixels: int = DEFAULT_MAX_PIXELS, progress: Progress | None = None,
                     is_canceled: IsCanceled | None = None) -> Iterator:
        """Stream fused predictions in input order (bad photos: a plain Prediction with ``error`` set)."""
        from ..model.predictor import as_list, iter_predictions

        items = as_list(images)
        self.check_model()
        _ = self.params  # fit (once) before the first photo, not in the middle of a batch
        model = self.model
        gallery_emb = model.gallery_embeddings(is_canceled=is_canceled)
        self._gallery_latlon, self._top_k = np.asarray(model.gallery.latlon), int(top_k)
        return iter_predictions(items, model.image_encoder(max_pixels), model.search(self._gallery_latlon, gallery_emb),
                                top_k=top_k, batch_size=batch_size, progress=progress, is_canceled=is_canceled,
                                post=self.fuse_batch)

    def predict(self, images, top_k: int = 5, batch_size: int = 8, max_pixels: int = DEFAULT_MAX_PIXELS,
                progress: Progress | None = None, is_canceled: IsCanceled | None = None) -> list:
        """Paths or PIL images -> one FusedPrediction per image (bad images: a Prediction with ``error``)."""
        return list(self.iter_predict(images, top_k, batch_size, max_pixels, progress, is_canceled))
