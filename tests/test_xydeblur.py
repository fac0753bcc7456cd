import copy

import pytest
import torch

from deblur.archs.registry import build_network
from deblur.archs.xydeblur import XYDeblur


def count(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "config, params",
    [({}, 4_918_627), ({"width": 16, "blocks": 2}, 455_603), ({"width": 24, "blocks": 3}, 1_459_755)],
)
def test_parameter_count_matches_the_design_tables(config, params):
    # models.md: official 4.919M, XY-tiny 0.46M, XY-small 1.46M
    assert count(build_network("xydeblur", config)) == params


def test_second_pass_equals_decoder_with_kernels_rotated():
    torch.manual_seed(0)
    net = XYDeblur(width=4, blocks=1).double().eval()
    x = torch.rand(1, 3, 16, 24, dtype=torch.float64)
    features = net.encoder(x)
    _, r2 = net.residuals(x)
    rotated_kernels = copy.deepcopy(net.decoder)
    for layer in rotated_kernels.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            layer.weight.data = torch.rot90(layer.weight.data, -1, dims=(2, 3))
    torch.testing.assert_close(r2, rotated_kernels(*features), rtol=0, atol=1e-12)


def test_output_is_input_plus_both_residuals():
    net = XYDeblur(width=4, blocks=1).eval()
    x = torch.rand(1, 3, 12, 20)
    r1, r2 = net.residuals(x)
    torch.testing.assert_close(net(x), x + r1 + r2)
