"""How a network becomes an image.

The network only predicts; the sampler decides how it is called. `direct` is one forward pass
(XYDeblur). The diffusion sampler for DvSR joins it here, apart from the networks.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch


class Sampler(Protocol):
    def __call__(self, blurry: torch.Tensor) -> torch.Tensor:
        """Map a padded NCHW batch in [0, 1] to its restored version, same shape."""


def direct(network: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """One deterministic forward pass."""

    def sample(blurry: torch.Tensor) -> torch.Tensor:
        return network(blurry)

    return sample


SAMPLERS = {"direct": direct}
