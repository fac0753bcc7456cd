"""Which device and which precision a run uses.

`auto` picks CUDA, then MPS, then the CPU, and says what it chose. A device asked for by name
must exist: a user who types `--device cuda` wants a failure, not a silent crawl on the CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from deblur.errors import DeviceError, UsageError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    precision: str  # fp32 | fp16 | bf16
    reason: str  # one line for the user: what was chosen and why

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """Parse auto | cpu | cuda | cuda:N | mps into a device that exists here."""
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' is not available on this machine; use --device auto or cpu")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if not match:
        raise UsageError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device '{name}' is not available: this PyTorch build sees no CUDA GPU; "
            "use --device auto or cpu, or install a CUDA build of PyTorch"
        )
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
        )
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device, supports_fp16: bool = True,
                      supports_bf16: bool = True, cpu_bf16: bool = False) -> str:
    """auto: bf16 on GPUs that do it well, and on CPUs that compute it natively for models measured to
    match fp32 there (`cpu_bf16`); else fp32 (emulated bf16 is slower, and MPS is safest in fp32)."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda" and supports_bf16 and torch.cuda.is_bf16_supported():
            return "bf16"
        if device.type == "cpu" and supports_bf16 and cpu_bf16 and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    if precision == "fp16" and not supports_fp16:
        raise UsageError("this model does not support fp16; use --precision fp32 or bf16")
    if precision == "bf16" and not supports_bf16:
        raise UsageError("this model does not support bf16; use --precision fp32 or fp16")
    return precision


def choose(device: str = "auto", precision: str = "auto", supports_fp16: bool = True,
           supports_bf16: bool = True, cpu_bf16: bool = False) -> DeviceChoice:
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev, supports_fp16, supports_bf16, cpu_bf16)
    label = str(dev)
    if dev.type == "cuda":
        label += f" ({torch.cuda.get_device_name(dev)})"
    device_how = "auto-selected" if device.strip().lower() == "auto" else "requested"
    precision_how = "auto-selected" if precision == "auto" else "requested"
    how = device_how if device_how == precision_how else f"device {device_how}, precision {precision_how}"
    return DeviceChoice(dev, prec, f"{label}, {prec} ({how})")


def choose_for(spec, device: str = "auto", precision: str = "auto") -> DeviceChoice:
    """`choose` with what an architecture (an ArchSpec) supports: the one way callers pick for a model."""
    return choose(device, precision, spec.supports_fp16, spec.supports_bf16, spec.cpu_bf16)


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX-512 BF16 or AMX), read from its feature flags.

    Elsewhere bf16 on the CPU is emulated and slower than fp32, so it is never guessed from the vendor.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def uses_channels_last(device: torch.device) -> bool:
    """NHWC convolutions measured 15-20% faster on the CPU; they are the fast path on CUDA too."""
    return device.type in ("cpu", "cuda")


def prepare_network(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a network to `device` in the memory layout that runs fastest there."""
    network = network.to(device)
    if uses_channels_last(device):
        network = network.to(memory_format=torch.channels_last)
    return network


def free_memory_bytes(device: torch.device) -> int:
    """Memory a run may use on `device` now: free VRAM on CUDA, available RAM otherwise."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return _available_host_memory()


def _available_host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30  # unknown platform: assume a modest 4 GiB


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
