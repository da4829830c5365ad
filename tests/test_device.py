"""Device and precision choice (model_utils.model.device): what "auto" picks, what an unavailable or unknown
device or precision does, and that the choices match the Processing parameters' lists.

The machine's real hardware is used where the answer does not depend on it; the GPU branches are
exercised by making torch report a GPU (monkeypatched ``is_available``), so the tests give the same
answers on a CPU-only runner and on a workstation with CUDA or Apple silicon.
"""

from __future__ import annotations

import re

import pytest
import torch

from model_utils.model import device as dev
from model_utils.model.device import DEVICES, PRECISIONS, pick_device, pick_dtype


def has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


@pytest.fixture()
def cpu_only(monkeypatch):
    """torch reports neither CUDA nor MPS, whatever the machine has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture()
def with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture()
def with_mps_only(monkeypatch):
    if getattr(torch.backends, "mps", None) is None:
        pytest.fail("this torch has no torch.backends.mps module; pick_device reads it through getattr")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


# ----------------------------------------------------------------------------------- devices


def test_auto_on_this_machine_is_a_device_torch_can_use():
    chosen = pick_device("auto")
    if torch.cuda.is_available():
        assert chosen == "cuda"
    elif has_mps():
        assert chosen == "mps"
    else:
        assert chosen == "cpu"
    assert torch.zeros(2, device=chosen).device.type == chosen


@pytest.mark.parametrize("given", ["auto", "AUTO", "", None])
def test_auto_without_a_gpu_is_cpu(cpu_only, given):
    assert pick_device(given) == "cpu"
    assert pick_device() == "cpu"  # the default is "auto"


@pytest.mark.parametrize("given", ["cpu", "CPU", "Cpu"])
def test_explicit_cpu_is_kept_whatever_the_machine_has(with_cuda, given):
    assert pick_device(given) == "cpu"


def test_auto_prefers_cuda_then_mps(monkeypatch, with_cuda):
    assert pick_device("auto") == "cuda"
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
        assert pick_device("auto") == "cuda"  # CUDA wins over MPS when both are there


def test_auto_is_mps_on_apple_silicon(with_mps_only):
    assert pick_device("auto") == "mps"
    assert pick_device("mps") == "mps"


@pytest.mark.parametrize("given", ["cuda", "CUDA", "cuda:1"])
def test_cuda_with_a_gpu_is_passed_through_lower_case(with_cuda, given):
    assert pick_device(given) == given.lower()


@pytest.mark.parametrize("given", ["cuda", "cuda:0", "Cuda"])
def test_cuda_without_a_gpu_is_refused_with_the_way_out(cpu_only, given):
    with pytest.raises(ValueError, match=re.escape("device 'cuda' was requested but no CUDA GPU is available; "
                                                   "use 'auto' or 'cpu'")):
        pick_device(given)


@pytest.mark.parametrize("given", ["mps", "MPS"])
def test_mps_without_apple_silicon_is_refused_with_the_way_out(cpu_only, given):
    with pytest.raises(ValueError, match=re.escape("device 'mps' was requested but Apple MPS is not available; "
                                                   "use 'auto' or 'cpu'")):
        pick_device(given)


def test_mps_is_refused_when_torch_has_no_mps_backend(monkeypatch, cpu_only):
    monkeypatch.delattr(torch.backends, "mps", raising=False)
    with pytest.raises(ValueError, match="Apple MPS is not available"):
        pick_device("mps")
    assert pick_device("auto") == "cpu"


@pytest.mark.parametrize("given", ["tpu", "gpu", "xpu", "cpu:0", " cpu"])
def test_unknown_device_names_the_choices(with_cuda, given):
    with pytest.raises(ValueError) as err:
        pick_device(given)
    assert str(err.value) == f"unknown device '{given.lower()}': choose one of auto, cpu, cuda, mps"


def test_every_listed_device_is_either_used_or_refused_as_unavailable(cpu_only):
    assert DEVICES == ("auto", "cpu", "cuda", "mps")
    for name in DEVICES:
        try:
            chosen = pick_device(name)
        except ValueError as exc:
            assert "was requested but" in str(exc) and "use 'auto' or 'cpu'" in str(exc)
            assert "unknown device" not in str(exc)
        else:
            assert chosen == "cpu"


# ----------------------------------------------------------------------------------- precision
@pytest.fixture()
def cpu_bf16(monkeypatch):
    """Say which CPU this is: with native bf16 or without (the real one is never asked)."""
    def choose(native: bool) -> None:
        monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)

    return choose


@pytest.mark.parametrize(("device", "expected"), [
    ("cuda", torch.float16),
    ("cuda:1", torch.float16),
    ("mps", torch.float16),
])
@pytest.mark.parametrize("precision", ["auto", "AUTO", "", None])
def test_auto_precision_is_half_on_gpus(device, expected, precision):
    assert pick_dtype(device, precision) == expected
    assert pick_dtype(device) == expected  # the default is "auto"
    assert dev.pick_precision(device, precision).autocast is None


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_the_cpu_is_bf16_autocast_only_where_the_cpu_has_it(cpu_bf16, native):
    cpu_bf16(native)
    choice = dev.pick_precision("cpu")
    assert choice.dtype is torch.float32  # the weights stay fp32 either way
    assert choice.autocast is (torch.bfloat16 if native else None)
    assert choice.note == ("backbone in bf16: this CPU has native bf16" if native else
                           "backbone in fp32: this CPU has no native bf16")


@pytest.mark.parametrize("native", [True, False])
def test_forced_choices_on_the_cpu(cpu_bf16, native):
    cpu_bf16(native)
    assert dev.pick_precision("cpu", "fp32").autocast is None
    forced = dev.pick_precision("cpu", "bf16")
    assert forced.autocast is torch.bfloat16 and forced.dtype is torch.float32
    assert ("slower" in forced.note) is (not native)  # works where bf16 is not native, and says so
    with pytest.raises(ValueError, match="fp16 is for GPUs"):
        dev.pick_precision("cpu", "fp16")
    int8 = dev.pick_precision("cpu", "int8")  # the same on either CPU: never chosen by auto
    assert int8.int8 and int8.autocast is None and int8.dtype is torch.float32
    assert int8.note.startswith("backbone in int8") and not dev.pick_precision("cpu").int8


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_int8_is_refused_on_gpus(device):
    with pytest.raises(ValueError, match=f"int8 is for the CPU: on {device} choose"):
        dev.pick_precision(device, "int8")


@pytest.mark.parametrize(("precision", "expected"), [
    ("fp32", torch.float32), ("FP32", torch.float32),
    ("fp16", torch.float16), ("Fp16", torch.float16),
    ("bf16", torch.bfloat16), ("BF16", torch.bfloat16),
])
@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_an_explicit_precision_is_honoured_on_gpus(device, precision, expected):
    assert pick_dtype(device, precision) is expected


def test_native_bf16_is_read_from_the_cpu_flags():
    assert dev.native_bf16_in("processor : 0\nflags : fpu sse avx512f avx512_bf16 avx512_vnni\n")
    assert dev.native_bf16_in("processor : 0\nflags : fpu amx_bf16 amx_tile\n")
    assert not dev.native_bf16_in("processor : 0\nflags : fpu sse avx2 avx512f\nbugs : avx512_bf16\n")
    assert not dev.native_bf16_in("")


@pytest.mark.parametrize("precision", ["int4", "fp64", "half", "float16", " fp16"])
def test_unknown_precision_names_the_choices(precision):
    with pytest.raises(ValueError) as err:
        pick_dtype("cpu", precision)
    assert str(err.value) == f"unknown precision '{precision.lower()}': choose one of auto, fp32, fp16, bf16, int8"


def test_every_listed_precision_gives_a_floating_dtype_on_gpus():
    assert PRECISIONS == ("auto", "fp32", "fp16", "bf16", "int8")  # int8 last: saved enum indices keep meaning
    for name in PRECISIONS[:-1]:
        for device in ("cuda", "mps"):
            assert pick_dtype(device, name).is_floating_point


def test_processing_parameters_list_the_same_choices_in_the_same_order():
    """The algorithms pass DEVICES[index] / PRECISIONS[index] of their enum parameters to model_utils."""
    from geoclip_qgis.processing import base

    assert tuple(base.DEVICES) == dev.DEVICES
    assert tuple(base.PRECISIONS) == dev.PRECISIONS


def test_cpu_workers_offer_every_precision_but_fp16_in_one_list(qgis_app):  # noqa: ARG001 - builds an algorithm
    """The Ray algorithm's choices and the batch job's --precision are one constant: what the one offers, the
    other accepts; fp16 (GPUs only) is in neither."""
    from geoclip_qgis.processing.algorithms.ray_cluster import GeolocateRayCluster
    from model_utils.batch.__main__ import parser
    from model_utils.constants import CPU_PRECISIONS

    assert CPU_PRECISIONS == ("auto", "fp32", "bf16", "int8")
    assert all(pick_dtype("cpu", name).is_floating_point for name in CPU_PRECISIONS)
    alg = GeolocateRayCluster()
    alg.initAlgorithm()
    assert tuple(alg.parameterDefinition("PRECISION").options()) == CPU_PRECISIONS
    for name in CPU_PRECISIONS:
        assert parser().parse_args(["geolocate", "--photos", "x", "--out", "y", "--precision", name]).precision == name
    with pytest.raises(SystemExit):
        parser().parse_args(["geolocate", "--photos", "x", "--out", "y", "--precision", "fp16"])
