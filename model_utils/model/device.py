"""Device and precision choice: GPU when present, half precision only where it pays."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from ..constants import DEVICES, PRECISIONS


def pick_device(device: str = "auto") -> str:
    """Resolve 'auto' to cuda, then mps, then cpu; reject a device this machine lacks."""
    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; use 'auto' or 'cpu'")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
    if device != "cpu" and not device.startswith("cuda") and device != "mps":
        raise ValueError(f"unknown device '{device}': choose one of {', '.join(DEVICES)}")
    return device


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU features that run bf16 matrix maths natively


def native_bf16_in(cpuinfo: str) -> bool:
    """Do the ``flags`` lines of a /proc/cpuinfo text name a native bf16 feature?"""
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags")
             for flag in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in BF16_FLAGS)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Does this CPU do bf16 natively (AVX512-BF16 or AMX)? Read from /proc/cpuinfo once; elsewhere (no /proc)
    the answer is no, and fp32 stays the default."""
    try:
        return native_bf16_in(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return False


@dataclass(frozen=True)
class Precision:
    """How the CLIP backbone runs: its weights' dtype, an autocast dtype for its forward pass (None: none),
    and one line that says why. The location encoder, gallery embeddings and softmax always stay fp32."""

    dtype: torch.dtype
    autocast: torch.dtype | None
    note: str
    int8: bool = False  # dynamic int8 quantization of the backbone's Linear layers (CPU only)


def pick_precision(device: str, precision: str = "auto") -> Precision:
    """fp16 weights on GPUs by default; on the CPU bf16 autocast where the CPU has native bf16 (weights stay
    fp32), else fp32. fp16 on the CPU is refused: it is slow and inexact there. int8 (CPU only) is never
    chosen by auto: it changes the answers more than bf16 does (bench/results.md, precision)."""
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    gpu = device.startswith("cuda") or device == "mps"
    if precision == "int8":
        if gpu:
            raise ValueError(f"precision int8 is for the CPU: on {device} choose auto, fp16, bf16 or fp32.")
        return Precision(torch.float32, None, "backbone in int8 (dynamic quantization of its Linear layers) as "
                                              "asked: faster than fp32 on CPUs without native bf16, answers close "
                                              "to fp32 but not identical", int8=True)
    if gpu:
        dtype = {"auto": torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
        return Precision(dtype[precision], None, f"backbone in {precision if precision != 'auto' else 'fp16'} "
                                                 f"on {device}")
    if precision == "fp16":
        raise ValueError("precision fp16 is for GPUs: on the CPU it is slow and inexact. Choose auto, fp32, bf16 "
                         "or int8.")
    native = cpu_has_native_bf16()
    if precision == "fp32" or (precision == "auto" and not native):
        return Precision(torch.float32, None, "backbone in fp32" + ("" if native else ": this CPU has no native bf16"))
    if native:
        return Precision(torch.float32, torch.bfloat16, "backbone in bf16: this CPU has native bf16")
    return Precision(torch.float32, torch.bfloat16, "backbone in bf16 as asked, though this CPU has no native bf16: "
                                                    "expect it to be slower than fp32")


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantization of a backbone tower's Linear layers (weights int8, activations quantized per
    batch). ``torch.ao.quantization`` warns that it is deprecated in torch 2.13 (torchao succeeds it); the
    warning is silenced here and a torch without it gets a clear error."""
    import warnings

    quantization = getattr(getattr(torch, "ao", None), "quantization", None)
    if quantization is None or not hasattr(quantization, "quantize_dynamic"):
        raise ValueError(f"precision int8 needs torch.ao.quantization.quantize_dynamic, which torch "
                         f"{torch.__version__} does not have: choose fp32 or auto")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        # in place: each fp32 Linear is freed as its int8 copy is made, so the peak stays near the fp32 model's
        return quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def pick_dtype(device: str, precision: str = "auto") -> torch.dtype:
    """The backbone weights' dtype (see ``pick_precision``)."""
    return pick_precision(device, precision).dtype
