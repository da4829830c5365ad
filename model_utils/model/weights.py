"""Find and verify GeoCLIP's pretrained weights without importing the ``geoclip`` package.

``geoclip/__init__.py`` imports torchvision and its training code; we only need three weight files,
so the package folder is located with ``importlib.util.find_spec`` and read as data.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..constants import EMBED_DIM
from ..errors import WeightsError

LOCATION_FILE = "location_encoder_weights.pth"
MLP_FILE = "image_encoder_mlp_weights.pth"
LOGIT_FILE = "logit_scale_weights.pth"
GALLERY_FILE = "coordinates_100K.csv"
WHEEL_HINT = "Install them with: python3 -m pip install --no-deps geoclip==1.3.0, or set GEOCLIP_WEIGHTS."

RFF_FEATURES = 512  # a capsule's random Fourier features (sin and cos of 256 projections): not EMBED_DIM
CLIP_DIM = 768  # CLIP ViT-L/14's projection: the width of the image features the MLP head takes
MLP_SHAPES = {"0.weight": (CLIP_DIM, CLIP_DIM), "0.bias": (CLIP_DIM,), "2.weight": (EMBED_DIM, CLIP_DIM),
              "2.bias": (EMBED_DIM,)}


def location_shapes(n_capsules: int = 3) -> dict[str, tuple[int, ...]]:
    """Expected keys and shapes of the location encoder's state dict."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(n_capsules):
        p = f"LocEnc{i}."
        shapes[p + "capsule.0.b"] = (RFF_FEATURES // 2, 2)
        shapes[p + "capsule.1.weight"] = (1024, RFF_FEATURES)
        shapes[p + "capsule.1.bias"] = (1024,)
        shapes[p + "capsule.3.weight"] = (1024, 1024)
        shapes[p + "capsule.3.bias"] = (1024,)
        shapes[p + "capsule.5.weight"] = (1024, 1024)
        shapes[p + "capsule.5.bias"] = (1024,)
        shapes[p + "head.0.weight"] = (EMBED_DIM, 1024)
        shapes[p + "head.0.bias"] = (EMBED_DIM,)
    return shapes


@dataclass(frozen=True)
class WeightFiles:
    """Paths of one GeoCLIP release: the three weight files and the default GPS gallery."""

    folder: Path
    location: Path
    mlp: Path
    logit_scale: Path
    gallery: Path | None

    def fingerprint(self) -> str:
        """Content hash of the location weights: keys the gallery-embedding cache."""
        return file_sha256(self.location)


def wheel_package_dir() -> Path | None:
    """Folder of the installed ``geoclip`` package, found without executing its ``__init__``."""
    try:
        spec = importlib.util.find_spec("geoclip")
    except (ImportError, ValueError):  # a half-imported or stubbed module in sys.modules
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def find_weights(folder: str | os.PathLike | None = None) -> WeightFiles:
    """Weights from ``folder``, else ``$GEOCLIP_WEIGHTS``, else the ``geoclip`` wheel."""
    chosen = folder or os.environ.get("GEOCLIP_WEIGHTS") or None
    if chosen:
        root = Path(chosen).expanduser()
        if not root.is_dir():
            raise WeightsError(f"GeoCLIP weights folder does not exist: {root}. {WHEEL_HINT}")
        gallery = next((p for p in (root / GALLERY_FILE, root / "gps_gallery" / GALLERY_FILE) if p.is_file()),
                       None)
    else:
        pkg = wheel_package_dir()
        if pkg is None:
            raise WeightsError(f"GeoCLIP weights not found: the geoclip package is not installed. {WHEEL_HINT}")
        root = pkg / "model" / "weights"
        gallery = pkg / "model" / "gps_gallery" / GALLERY_FILE
        gallery = gallery if gallery.is_file() else None
    files = WeightFiles(root, root / LOCATION_FILE, root / MLP_FILE, root / LOGIT_FILE, gallery)
    for path in (files.location, files.mlp, files.logit_scale):
        if not path.is_file():
            raise WeightsError(f"GeoCLIP weight file missing: {path}. {WHEEL_HINT}")
    return files


def _load_tensor_file(path: Path):
    """torch.load with weights_only=True (no pickled code), or safetensors; errors name the file."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, truncated download
        raise WeightsError(f"Cannot read GeoCLIP weight file {path}: {exc}. {WHEEL_HINT}") from exc


def load_state_dict(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Load a state dict and check every key and shape, naming the file and what differs."""
    state = _load_tensor_file(path)
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, expected a state dict with keys "
                           f"{sorted(expected)[:4]}...")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{k}: {tuple(state[k].shape)} (expected {expected[k]})"
                   for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:6]}{' …' if len(missing) > 6 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:6]}{' …' if len(unexpected) > 6 else ''}")
        if wrong:
            parts.append(f"wrong shapes {wrong[:6]}")
        raise WeightsError(f"GeoCLIP weight file {path} does not match the model: " + "; ".join(parts)
                           + f". Expected {len(expected)} tensors, e.g. "
                           + ", ".join(f"{k} {v}" for k, v in list(expected.items())[:3]) + ".")
    return {k: state[k].float() for k in expected}


def load_logit_scale(path: Path) -> torch.Tensor:
    """The learned (log) temperature: a scalar tensor."""
    value = _load_tensor_file(path)
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise WeightsError(f"{path} must hold a scalar tensor (GeoCLIP's logit scale), got {type(value).__name__}")
    return value.reshape(()).float()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
