"""The GeoCLIP model users script against: ``GeoCLIP.from_pretrained(...)``.

Location side (encoder, MLP, logit scale, gallery) loads eagerly and needs no network; the CLIP
backbone loads on first use of images or text, one tower at a time, so location-only work runs
offline. Gallery embeddings are computed once and cached on disk (see ``gallery``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from torch import nn

from ..constants import EMBED_DIM
from ..geo import validate_latlon
from ..photos.images import DEFAULT_MAX_PIXELS
from ..progress import IsCanceled, Progress
from . import backbone
from .device import Precision, pick_device, pick_precision, quantize_int8
from .gallery import Gallery, default_cache_dir, gallery_embeddings
from .location_encoder import LocationEncoder
from .predictor import GallerySearch, ImageEncoder, Prediction, as_list, iter_predictions, iter_text_predictions
from .weights import CLIP_DIM, MLP_SHAPES, WeightFiles, find_weights, load_logit_scale, load_state_dict, location_shapes

log = logging.getLogger(__name__)



def image_mlp() -> nn.Sequential:
    """GeoCLIP's head on CLIP image features: 768 -> 768 -> EMBED_DIM (512)."""
    return nn.Sequential(nn.Linear(CLIP_DIM, CLIP_DIM), nn.ReLU(), nn.Linear(CLIP_DIM, EMBED_DIM))


class GeoCLIP:
    """GeoCLIP (NeurIPS 2023) for inference: photos or text -> GPS, GPS -> embeddings."""

    def __init__(self, files: WeightFiles, clip_model: str, device: str, precision: Precision,
                 cache_dir: Path | None = None) -> None:
        self.files = files
        self.clip_model = clip_model
        self.device = device
        self.precision = precision
        self.dtype = precision.dtype
        self.cache_dir = cache_dir
        self.location_encoder = LocationEncoder()
        self.location_encoder.load_state_dict(load_state_dict(files.location, location_shapes()))
        self.location_encoder.to(device).eval()
        self.mlp = image_mlp()
        self.mlp.load_state_dict(load_state_dict(files.mlp, MLP_SHAPES))
        self.mlp.to(device).eval()
        self.logit_scale = load_logit_scale(files.logit_scale).to(device)
        self._fingerprint = files.fingerprint()
        self._vision = None
        self._processor = None
        self._text = None
        self._tokenizer = None
        self._gallery: Gallery | None = None
        self._gallery_emb: torch.Tensor | None = None
        self._other_emb: tuple[str, torch.Tensor] | None = None
        self._lock = threading.RLock()
        self._precision_said = False
        self.backbone_origin = ""  # where the last loaded CLIP tower came from (repo and commit, or folder)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, clip_model: str | os.PathLike | None = None,
                        weights: str | os.PathLike | None = None, device: str = "auto",
                        precision: str = "auto", cache_dir: str | os.PathLike | None = None) -> GeoCLIP:
        """Load GeoCLIP weights (``weights`` / $GEOCLIP_WEIGHTS / the geoclip wheel).

        ``clip_model`` (a repo id or folder; default $GEOCLIP_CLIP_MODEL or ViT-L/14) is only
        resolved when images or text are first used.
        """
        dev = pick_device(device)
        files = find_weights(weights)
        return cls(files, backbone.clip_source(clip_model), dev, pick_precision(dev, precision),
                   Path(cache_dir) if cache_dir else None)

    # ------------------------------------------------------------------ locations
    @torch.inference_mode()
    def encode_locations(self, latlon, normalize: bool = False, batch_size: int = 16384) -> np.ndarray:
        """(N, 2) degrees [lat, lon] -> (N, 512) float32, unnormalised like the reference."""
        arr = validate_latlon(latlon)
        out = np.empty((len(arr), EMBED_DIM), dtype=np.float32)
        for start in range(0, len(arr), batch_size):
            chunk = torch.from_numpy(arr[start:start + batch_size].astype(np.float32)).to(self.device)
            emb = self.location_encoder(chunk)
            if normalize:
                emb = F.normalize(emb, dim=1)
            out[start:start + len(chunk)] = emb.float().cpu().numpy()
        return out

    # ------------------------------------------------------------------ gallery
    @property
    def gallery(self) -> Gallery:
        """The GPS gallery predictions rank against (default: GeoCLIP's 100K points)."""
        if self._gallery is None:
            if self.files.gallery is None:
                raise FileNotFoundError(f"No default GPS gallery next to the weights in {self.files.folder}; "
                                        f"pass one with set_gallery()")
            self._gallery = Gallery.from_csv(self.files.gallery, name="geoclip-100K")
        return self._gallery

    def set_gallery(self, gallery: Gallery | np.ndarray) -> None:
        """Rank against another gallery (array of lat/lon or Gallery); its embeddings are cached too."""
        gallery = gallery if isinstance(gallery, Gallery) else Gallery(np.asarray(gallery))
        with self._lock:
            self._gallery, self._gallery_emb = gallery, None

    def gallery_embeddings(self, progress: Progress | None = None, is_canceled: IsCanceled | None = None,
                           gallery: Gallery | None = None) -> torch.Tensor:
        """Unit-length embeddings of ``gallery`` (default: the model's) on the model's device.

        From the disk cache when possible; the default gallery and the last other one (e.g. a
        regional grid) also stay in memory, so a run that warms them up pays once.
        """
        with self._lock:
            if gallery is not None and gallery != self._gallery:
                if self._other_emb is None or self._other_emb[0] != gallery.digest:
                    emb = self.embed_gallery(gallery, progress=progress, is_canceled=is_canceled)
                    self._other_emb = (gallery.digest, torch.from_numpy(np.ascontiguousarray(emb)).to(self.device))
                return self._other_emb[1]
            if self._gallery_emb is None:
                emb = self.embed_gallery(self.gallery, progress=progress, is_canceled=is_canceled)
                self._gallery_emb = torch.from_numpy(np.ascontiguousarray(emb)).to(self.device)
            return self._gallery_emb

    def use_gallery_embeddings(self, embeddings: np.ndarray) -> None:
        """Rank against these unit-length embeddings of the model's gallery instead of its disk cache.

        Why: a batch job computes them once and hands every worker the same read-only array (Ray's
        object store), so no worker encodes or reads the 100K points again.
        """
        import warnings

        if embeddings.shape != (len(self.gallery), 512):
            raise ValueError(f"gallery embeddings of shape {embeddings.shape} do not fit the gallery of "
                             f"{len(self.gallery)} points x 512")
        # read-only shared memory: torch warns that it cannot write to it; it never does
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tensor = torch.from_numpy(embeddings).to(self.device)
        with self._lock:
            self._gallery_emb = tensor

    def embed_gallery(self, gallery: Gallery, progress: Progress | None = None,
                      is_canceled: IsCanceled | None = None,
                      encode: Callable[[np.ndarray], np.ndarray] | None = None, variant: str = "") -> np.ndarray:
        """Embeddings of any gallery (e.g. a grid), through the same disk cache.

        Default: unit-length embeddings of the points. ``encode`` (named by ``variant`` in the cache
        key) computes something else per point, e.g. a cell's mean embedding.
        """
        return gallery_embeddings(
            gallery, encode or (lambda chunk: self.encode_locations(chunk, normalize=True)),
            self._fingerprint + (f"|{variant}" if variant else ""), self.cache_dir or default_cache_dir(),
            progress=progress, is_canceled=is_canceled)

    # ------------------------------------------------------------------ images
    def load_backbone(self, progress: Progress | None = None, is_canceled: IsCanceled | None = None) -> None:
        """Load the CLIP vision tower, downloading it first if needed (``progress`` in bytes, cancellable);
        raises BackboneUnavailable with a clear message."""
        with self._lock:
            if self._vision is None:
                vision, self._processor, self.backbone_origin = backbone.load_vision(
                    self.clip_model, self.device, self.dtype, progress, is_canceled)
                self._vision = quantize_int8(vision) if self.precision.int8 else vision
                self._say_precision()

    @property
    def processor(self):
        self.load_backbone()
        return self._processor

    @torch.inference_mode()
    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed pixels (B, 3, 224, 224) -> unit-length GeoCLIP image embeddings (B, 512) fp32."""
        self.load_backbone()
        with self._autocast():
            feats = self._vision(pixel_values=pixels.to(self.device, self.dtype)).image_embeds
        return F.normalize(self.mlp(feats.float()), dim=1)

    def _say_precision(self) -> None:
        """Log the backbone's precision choice (and why) once per model, when a tower first loads: Python API
        users see it at INFO; QGIS says it through the run's feedback instead."""
        if not self._precision_said:
            self._precision_said = True
            log.info("GeoCLIP: %s", self.precision.note)

    def _autocast(self):
        """bf16 autocast around a backbone forward where the precision asks for it (weights stay fp32)."""
        import contextlib

        if self.precision.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.precision.autocast)

    def iter_predict(self, images: Iterable, top_k: int = 5, batch_size: int = 8,
                     max_pixels: int = DEFAULT_MAX_PIXELS, progress: Progress | None = None,
                     is_canceled: IsCanceled | None = None,
                     gallery: Gallery | None = None) -> Iterator[Prediction]:
        """Stream predictions batch by batch (results come in input order), against ``gallery`` if given."""
        items = as_list(images)
        self.load_backbone()
        gallery_emb = self.gallery_embeddings(is_canceled=is_canceled, gallery=gallery)
        latlon = (gallery or self.gallery).latlon
        return iter_predictions(items, self.image_encoder(max_pixels), self.search(latlon, gallery_emb), top_k=top_k,
                                batch_size=batch_size, progress=progress, is_canceled=is_canceled)

    def image_encoder(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageEncoder:
        """The loaded vision side, as the image pipeline takes it."""
        self.load_backbone()
        return ImageEncoder(self.embed_pixels, self._processor, max_pixels)

    def search(self, latlon: np.ndarray | None = None, embeddings: torch.Tensor | None = None) -> GallerySearch:
        """Ranking against ``latlon`` with their ``embeddings`` (default: the model's gallery)."""
        if latlon is None:
            latlon, embeddings = self.gallery.latlon, self.gallery_embeddings()
        return GallerySearch(np.asarray(latlon), embeddings, float(self.logit_scale.exp()))

    def predict(self, images, top_k: int = 5, batch_size: int = 8, max_pixels: int = DEFAULT_MAX_PIXELS,
                progress: Progress | None = None, is_canceled: IsCanceled | None = None,
                gallery: Gallery | None = None) -> list[Prediction]:
        """Paths or PIL images -> one Prediction per image (bad images get ``error`` set)."""
        return list(self.iter_predict(images, top_k, batch_size, max_pixels, progress, is_canceled, gallery))


    # ------------------------------------------------------------------ text
    def load_text_tower(self, progress: Progress | None = None,
                        is_canceled: IsCanceled | None = None) -> None:
        """Load the CLIP text tower and tokenizer, downloading them first if needed (as ``load_backbone``)."""
        with self._lock:
            if self._text is None:
                text, self._tokenizer, self.backbone_origin = backbone.load_text(
                    self.clip_model, self.device, self.dtype, progress, is_canceled)
                self._text = quantize_int8(text) if self.precision.int8 else text
                self._say_precision()

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Text queries -> unit-length GeoCLIP embeddings (B, 512) fp32.

        GeoCLIP trains only its image head, but CLIP puts captions and photos in one space, so CLIP's
        text features go through the same 768 -> 512 head (the paper's text-query experiment).
        Texts longer than CLIP's 77 tokens are truncated.
        """
        self.load_text_tower()
        limit = getattr(self._text.config, "max_position_embeddings", 77)
        tokens = self._tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
        with self._autocast():
            feats = self._text(input_ids=tokens["input_ids"].to(self.device),
                               attention_mask=tokens["attention_mask"].to(self.device)).text_embeds
        return F.normalize(self.mlp(feats.float()), dim=1)

    def iter_predict_text(self, texts: Iterable[str] | str, top_k: int = 5, batch_size: int = 32,
                          progress: Progress | None = None, is_canceled: IsCanceled | None = None,
                          gallery: Gallery | None = None) -> Iterator[Prediction]:
        """Stream predictions for text queries ("Pyramids of Giza"), in input order."""
        items = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        self.load_text_tower()
        gallery_emb = self.gallery_embeddings(is_canceled=is_canceled, gallery=gallery)
        search = self.search((gallery or self.gallery).latlon, gallery_emb)
        return iter_text_predictions(items, self.embed_texts, search, top_k=top_k, batch_size=batch_size,
                                     progress=progress, is_canceled=is_canceled)

    def predict_text(self, texts: Iterable[str] | str, top_k: int = 5, batch_size: int = 32,
                     progress: Progress | None = None, is_canceled: IsCanceled | None = None,
                     gallery: Gallery | None = None) -> list[Prediction]:
        """Text queries -> one Prediction each (an empty query gets ``error`` set)."""
        return list(self.iter_predict_text(texts, top_k, batch_size, progress, is_canceled, gallery))


_SHARED: dict[tuple, GeoCLIP] = {}
_SHARED_LOCK = threading.Lock()


def release_shared_model() -> None:
    """Drop the process's shared GeoCLIP (the plugin calls this on unload: ~1.2 GB with ViT-L/14)."""
    with _SHARED_LOCK:
        _SHARED.clear()
    import gc

    gc.collect()


def shared_model(clip_model: str | None = None, weights: str | None = None, device: str = "auto",
                 precision: str = "auto", cache_dir: str | os.PathLike | None = None) -> GeoCLIP:
    """The process's one GeoCLIP, reused across runs while the choices stay the same.

    Another backbone, weights, device, precision or cache replaces it (a ViT-L/14 holds ~1.2 GB:
    keeping every one ever used would grow without bound in a long QGIS session).
    """
    dev = pick_device(device)
    key = (backbone.clip_source(clip_model), str(find_weights(weights).folder), dev,
           str(pick_precision(dev, precision)), str(Path(cache_dir).expanduser()) if cache_dir else "")
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED.clear()  # release the previous model before loading the next
            _SHARED[key] = GeoCLIP.from_pretrained(clip_model, weights, device, precision, cache_dir=cache_dir)
        return _SHARED[key]
