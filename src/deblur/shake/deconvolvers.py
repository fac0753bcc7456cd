"""The shake model's non-blind step, by name: the hyper-Laplacian, or the learned deconvolution network.

Both are called as deconvolver(pixels, kernel, device, on_channel) -> pixels (H x W x C float32,
unclipped), so kernel estimation, guards and the fallback never need to know which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deblur.errors import ModelError
from deblur.shake.deconvolve import DeconvolutionSettings, deconvolve

HYPER_LAPLACIAN, LEARNED = "hyper-laplacian", "learned"
ARCH = "deconvolution"  # the checkpoints' arch metadata (`deblur train --model deconvolution`)


@dataclass(frozen=True)
class HyperLaplacian:
    settings: DeconvolutionSettings = DeconvolutionSettings()
    name: str = HYPER_LAPLACIAN

    def __call__(self, pixels: np.ndarray, kernel: np.ndarray, device="cpu", on_channel=None) -> np.ndarray:
        return deconvolve(pixels, kernel, self.settings, device, on_channel=on_channel)


@dataclass(frozen=True)
class Learned:
    network: object = field(compare=False)  # a DeconvolutionNetwork in eval mode
    source: str = ""
    name: str = LEARNED

    def __call__(self, pixels: np.ndarray, kernel: np.ndarray, device="cpu", on_channel=None) -> np.ndarray:
        from deblur.shake.deconvolution_network import deconvolve_learned

        return deconvolve_learned(pixels, kernel, self.network, device, on_channel=on_channel)


def load_learned(path: str | Path) -> Learned:
    """The learned deconvolution in a checkpoint of `deblur train --model deconvolution`."""
    from deblur.checkpoints import checkpoint_arch, read_checkpoint
    from deblur.shake.deconvolution_network import DeconvolutionNetwork

    state, metadata = read_checkpoint(path)
    arch, config = checkpoint_arch(metadata, path)
    if arch != ARCH:
        raise ModelError(f"'{path}' is a {arch or 'network'} checkpoint, not a learned deconvolution; train one "
                         "with: deblur train --model deconvolution --sharp DIR")
    try:
        network = DeconvolutionNetwork(**config)
        network.load_state_dict(state)
    except (TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"'{path}' does not fit the learned deconvolution {config}: {first}") from None
    return Learned(network.eval().requires_grad_(False), source=str(path))
