"""Layers shared by the networks (MIMO-UNet conventions: bias everywhere, no normalisation)."""

from torch import nn


def conv(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """A k x k convolution with 'same' padding, optionally followed by ReLU."""
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def up_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """Exact 2x upsampling: ConvTranspose 4x4, stride 2, padding 1, then ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, plus the identity; no activation after the sum."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, kernel), conv(channels, channels, kernel, relu=False))

    def forward(self, x):
        return x + self.body(x)


def res_blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(count)))
