"""Training losses: L1, the FFT loss of MIMO-UNet, and the reblurring losses of Nah et al. (ICLR 2022).

Notation as in the paper: B blurry, S sharp, L = M_D(B) deblurred, M_R the reblurring module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output, target)


def fft_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the 2-D spectra, real and imaginary parts stacked (MIMO-UNet's FFT term)."""
    out_f = torch.fft.fft2(output.float())
    tgt_f = torch.fft.fft2(target.float())
    return F.l1_loss(torch.view_as_real(out_f), torch.view_as_real(tgt_f))


def reblur_module_loss(reblur, deblurred: torch.Tensor, blurry: torch.Tensor, sharp: torch.Tensor):
    """L_Blur + L_Sharp, the loss M_R trains on: rebuild B from L (detached), keep S unchanged.

    Without L_Sharp, M_R would learn to blur anything and its verdict would mean nothing. One
    forward over both halves: distributed training allows one forward per backward.
    """
    reblurred = reblur(torch.cat([deblurred.detach(), sharp]))
    from_deblurred, from_sharp = reblurred.chunk(2)
    return l1(from_deblurred, blurry), l1(from_sharp, sharp)


def supervised_reblur_loss(reblur, deblurred: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """||M_R(L) - M_R(S)||_1 with M_R frozen: gradients reach L through M_R; M_R(S) is a constant target."""
    with torch.no_grad():
        target = reblur(sharp)
    return l1(reblur(deblurred), target)


def self_reblur_loss(reblur, deblurred: torch.Tensor) -> torch.Tensor:
    """||M_R(L) - sg(L)||_1: no sharp image needed; a sharp L is a fixed point of M_R (test-time adaptation)."""
    return l1(reblur(deblurred), deblurred.detach())
