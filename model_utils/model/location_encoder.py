"""GeoCLIP's location encoder: Equal Earth projection + three random-Fourier-feature capsules.

The module tree mirrors the reference implementation (``LocEnc{i}.capsule.{0,1,3,5}``,
``LocEnc{i}.head.0``) so its state dict loads unchanged, and the arithmetic follows the same order
of operations so float32 results agree to ~1e-6.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..constants import EMBED_DIM
from .weights import RFF_FEATURES

# Equal Earth projection constants (Šavrič, Patterson, Jenny 2018) and GeoCLIP's scale factor.
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
SCALE = 66.50336
SIGMAS = (2**0, 2**4, 2**8)


def equal_earth(latlon: torch.Tensor) -> torch.Tensor:
    """Project (N, 2) degrees [lat, lon] to GeoCLIP's scaled Equal Earth plane (N, 2) [x, y]."""
    lat = torch.deg2rad(latlon[:, 0])
    lon = torch.deg2rad(latlon[:, 1])
    root3 = torch.sqrt(torch.tensor(3.0))
    theta = torch.asin((root3 / 2) * torch.sin(lat))
    denom = 3 * (9 * A4 * theta**8 + 7 * A3 * theta**6 + 3 * A2 * theta**2 + A1)
    x = (2 * root3 * lon * torch.cos(theta)) / denom
    y = A4 * theta**9 + A3 * theta**7 + A2 * theta**3 + A1 * theta
    return (torch.stack((x, y), dim=1) * SCALE) / 180


class FourierFeatures(nn.Module):
    """Fixed Gaussian random Fourier features: [cos(2πBv), sin(2πBv)]."""

    def __init__(self, sigma: float, frequencies: int = 256, input_dim: int = 2) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.randn(frequencies, input_dim) * sigma, requires_grad=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * v @ self.b.T
        return torch.cat((torch.cos(angles), torch.sin(angles)), dim=-1)


class Capsule(nn.Module):
    """One resolution: RFF(sigma) -> MLP 512-1024-1024-1024 -> head 512."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.capsule = nn.Sequential(
            FourierFeatures(sigma),
            nn.Linear(RFF_FEATURES, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(1024, EMBED_DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.capsule(x))


class LocationEncoder(nn.Module):
    """Sum of the capsules' outputs: a 512-d embedding per (lat, lon), unnormalised."""

    def __init__(self, sigmas: tuple[float, ...] = SIGMAS) -> None:
        super().__init__()
        self.sigmas = tuple(sigmas)
        for i, sigma in enumerate(self.sigmas):
            self.add_module(f"LocEnc{i}", Capsule(sigma))

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        xy = equal_earth(latlon)
        out = torch.zeros(xy.shape[0], EMBED_DIM, device=xy.device, dtype=xy.dtype)
        for i in range(len(self.sigmas)):
            out += self._modules[f"LocEnc{i}"](xy)
        return out
