"""Architecture name -> constructor and what the pipeline must know about the network.

Like spandrel's model descriptors: the pipeline asks the spec (size multiple, half precision)
instead of special-casing model names.
"""

from dataclasses import dataclass, field
from typing import Callable

from deblur.errors import ModelError


@dataclass(frozen=True)
class ArchSpec:
    name: str
    build: Callable  # (**config) -> nn.Module
    default_config: dict
    size_multiple: int = 1
    supports_fp16: bool = True
    supports_bf16: bool = True
    # `--precision auto` on a CPU that computes bf16 natively (AVX-512 BF16, AMX) uses bf16: set only
    # where it was measured to match fp32 (the shipped xydeblur: within 0.011 dB PSNR on kodak24 and
    # gopro-avg, 2.4x faster on 2 cores); elsewhere auto stays fp32 on the CPU.
    cpu_bf16: bool = False
    # Rough peak activation memory in bytes per input pixel at fp32, per unit of `width`;
    # used only to pick a starting tile size (OOM back-off corrects a bad guess).
    bytes_per_pixel_per_width: float = 0.0
    config_keys: tuple = field(default=())
    width_key: str = "width"  # the config entry that memory grows with
    objective: str = "direct"  # how it trains: "direct" (L1 to sharp) or "diffusion" (DvSR); "classical": not trained
    default_sampler: str = "direct"
    needs_weights: bool = True  # False: an algorithm with no checkpoint (the shake model)

    def bytes_per_pixel(self, config: dict) -> float:
        return self.bytes_per_pixel_per_width * {**self.default_config, **config}.get(self.width_key, 1)


def _build_xydeblur(**config):
    from deblur.archs.xydeblur import XYDeblur

    return XYDeblur(**config)


def _build_reblur(**config):
    from deblur.archs.reblur import Reblur

    return Reblur(**config)


def _build_shake(**config):
    from deblur.shake.restorer import ShakeOptions

    return ShakeOptions(**config)


def _build_dvsr(**config):
    from deblur.archs.dvsr import DvSR

    try:
        return DvSR(**config)
    except ValueError as exc:  # a setting's value DvSR does not know, e.g. predictor=resnet
        raise ModelError(f"dvsr: {exc}") from None


# The reblurring module travels inside a deblurring checkpoint (tensors prefixed "reblur.").
REBLUR = ArchSpec(name="reblur", build=_build_reblur, default_config={"width": 32, "blocks": 1, "kernel": 5},
                  config_keys=("width", "blocks", "kernel"))

ARCHS = {
    "xydeblur": ArchSpec(
        name="xydeblur",
        build=_build_xydeblur,
        default_config={"width": 32, "blocks": 6},
        size_multiple=4,
        bytes_per_pixel_per_width=96.0,  # measured 74-88 (peak RSS, fp32)
        config_keys=("width", "blocks"),
        cpu_bf16=True,
    ),
    "dvsr": ArchSpec(
        name="dvsr",
        build=_build_dvsr,
        default_config={"predictor_width": 32, "denoiser_width": 16, "blocks": 1, "dropout": 0.0,
                        "predictor": "unet", "predictor_blocks": 3, "condition": "blurry",
                        "residual_scale": 2.0},
        size_multiple=8,
        supports_fp16=False,  # the noise schedule's small betas underflow in fp16
        bytes_per_pixel_per_width=96.0,  # a guess from XYDeblur's; the OOM back-off corrects it
        config_keys=("predictor_width", "denoiser_width", "blocks", "dropout", "predictor", "predictor_blocks",
                     "condition", "residual_scale"),
        width_key="predictor_width",
        objective="diffusion",
        default_sampler="diffusion",
    ),
    # Blind camera-shake deconvolution: no network; its "network" is the ShakeOptions built from config.
    "shake": ArchSpec(
        name="shake",
        build=_build_shake,
        default_config={},
        supports_fp16=False,
        supports_bf16=False,
        config_keys=("region_size", "max_kernel_size"),
        objective="classical",
        needs_weights=False,
    ),
}


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHS[name]
    except KeyError:
        known = ", ".join(sorted(ARCHS))
        raise ModelError(f"unknown architecture '{name}'; known: {known}") from None


def build_network(arch: str, config: dict):
    """Build an untrained network; unknown config keys are a clear error, not a TypeError."""
    spec = REBLUR if arch == "reblur" else get_arch(arch)
    unknown = set(config) - set(spec.config_keys)
    if unknown:
        raise ModelError(
            f"configuration for '{arch}' has unknown keys {sorted(unknown)}; "
            f"allowed: {', '.join(spec.config_keys)}"
        )
    return spec.build(**{**spec.default_config, **config})
