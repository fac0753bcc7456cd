"""DvSR: networks, the residual training target, the sampler, seeds and tiling with a shared noise field."""

import numpy as np
import pytest
import torch

from deblur.archs.dvsr import noise_level_encoding, noisy_residual
from deblur.archs.registry import build_network
from deblur.devices import choose
from deblur.diffusion import inference_schedule, noise_field, sample_training_levels
from deblur.restorer import Restorer
from deblur.samplers import diffusion

SMALL = {"predictor_width": 8, "denoiser_width": 8, "blocks": 1}


def model():
    torch.manual_seed(0)
    return build_network("dvsr", SMALL).eval()


def test_both_networks_keep_any_multiple_of_8():
    net = model()
    y = torch.rand(2, 3, 40, 56)
    assert net(y).shape == y.shape
    assert net.denoise(torch.randn(2, 3, 40, 56), torch.rand(2), y, y).shape == y.shape


def test_the_diffusion_target_is_sharp_minus_the_predictors_output():
    net = model()
    y, sharp, noise = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    seen = {}
    real_denoise = net.denoise

    def spy(noisy, level, blurry, prediction):
        seen["noisy"] = noisy
        return real_denoise(noisy, level, blurry, prediction)

    net.denoise = spy
    x_init, _ = net(y, sharp, torch.ones(2), noise)  # level 1: no noise, the bare residual
    torch.testing.assert_close(seen["noisy"], 2 * (sharp - net.predict(y)))
    net.residual_scale = 10.0  # a larger scale brings a small residual up to the noise's size
    net(y, sharp, torch.ones(2), noise)
    torch.testing.assert_close(seen["noisy"], 10 * (sharp - net.predict(y)))
    torch.testing.assert_close(x_init, net.predict(y))
    # noise level 0: pure noise; in between, the DDPM mix
    torch.testing.assert_close(noisy_residual(x_init, sharp, torch.zeros(2), noise, 2.0), noise)
    level = torch.full((2,), 0.6)
    torch.testing.assert_close(noisy_residual(x_init, sharp, level, noise, 2.0),
                               0.6 * 2 * (sharp - x_init) + 0.8 * noise)


def test_the_predictor_learns_through_the_residual():
    net = model().train()
    y, sharp, noise = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), torch.randn(1, 3, 16, 16)
    _, predicted = net(y, sharp, torch.full((1,), 0.9), noise)
    (predicted - noise).abs().mean().backward()
    assert net.predictor.tail.weight.grad.abs().sum() > 0  # (the layers before it follow once it moves)


def test_training_and_sampling_feed_the_same_noise_level():
    """Both give the denoiser sqrt(alpha_bar) itself (not a step index); one encoding serves both."""
    levels = sample_training_levels(1000, torch.Generator().manual_seed(0))
    assert 0 < levels.min() and levels.max() <= 1
    net = model()
    seen = []
    real_denoise = net.denoise
    net.denoise = lambda z, level, y, prediction: seen.append(level.clone()) or real_denoise(z, level, y, prediction)
    diffusion(net, steps=5, seed=0)(torch.rand(1, 3, 16, 16))
    expected = inference_schedule(5).alpha_bars.sqrt().flip(0).float()
    torch.testing.assert_close(torch.cat(seen), expected)
    encoded = noise_level_encoding(torch.tensor([0.5, 0.5]), 8)
    assert torch.equal(encoded[0], encoded[1]) and encoded.shape == (2, 8)


def test_steps_zero_is_the_predictor_and_a_seed_reproduces_a_run():
    net = model()
    y = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        torch.testing.assert_close(diffusion(net, steps=0)(y), net.predict(y))
        first = diffusion(net, steps=3, samples=2, seed=7)(y)
        again = diffusion(net, steps=3, samples=2, seed=7)(y)
        other = diffusion(net, steps=3, samples=2, seed=8)(y)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == y.shape


def test_noise_field_is_the_same_wherever_a_tile_reads_it():
    whole = noise_field(3, 2, 2, 3, 0, 0, 48, 64)
    tile = noise_field(3, 2, 2, 3, 16, 24, 20, 30)
    assert torch.equal(tile, whole[:, :, 16:36, 24:54])
    assert abs(whole.mean().item()) < 0.05 and abs(whole.std().item() - 1) < 0.05


def test_tiled_diffusion_matches_untiled_thanks_to_the_shared_noise():
    net = model()
    pixels = np.random.default_rng(0).random((96, 96, 3), dtype=np.float32)
    sample = diffusion(net, steps=3, seed=1)
    whole, _ = Restorer(sample, choose("cpu"), 8, 10.0, tile=256).restore(pixels)
    tiled, report = Restorer(sample, choose("cpu"), 8, 10.0, tile=64, overlap=16).restore(pixels)
    assert report.tiles > 1
    # same noise at every pixel: the tiles differ only where the network's view of the border does
    assert np.abs(whole - tiled).mean() < 1e-4 and np.abs(whole - tiled).max() < 0.02
    other, _ = Restorer(diffusion(net, steps=3, seed=2), choose("cpu"), 8, 10.0, tile=256).restore(pixels)
    assert np.abs(whole - other).mean() > 0.1  # another seed: other noise, another sample


def test_bad_sampler_settings_are_refused():
    with pytest.raises(ValueError):
        diffusion(model(), steps=-1)
    with pytest.raises(ValueError):
        diffusion(model(), steps=2, variance="huge")


def test_an_untrained_predictor_starts_from_the_blurry_input():
    net = model()
    y = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(net.predict(y), y)


class OracleDenoiser(torch.nn.Module):
    """A denoiser that knows the answer: the noise that separates z from the true residual."""

    def __init__(self, predictor, sharp, residual_scale=2.0):
        super().__init__()
        self.predictor, self.sharp, self.residual_scale = predictor, sharp, residual_scale

    def predict(self, blurry):
        return self.predictor(blurry)

    def denoise(self, z, level, blurry, prediction):
        residual = self.residual_scale * (self.sharp - prediction)
        level = level.view(-1, 1, 1, 1)
        return (z - level * residual) / (1 - level**2).sqrt()


@pytest.mark.parametrize("steps,samples,scale", [(1, 1, 2.0), (10, 1, 2.0), (10, 4, 2.0), (100, 2, 2.0),
                                                (10, 2, 10.0)])
def test_a_perfect_denoiser_makes_the_sampler_return_the_sharp_image(steps, samples, scale):
    sharp = torch.rand(1, 3, 16, 24)
    blurry = (sharp + 0.3 * torch.rand_like(sharp)).clamp(0, 1)
    oracle = OracleDenoiser(lambda y: y * 0.9, sharp, scale)
    with torch.no_grad():
        restored = diffusion(oracle, steps=steps, samples=samples, seed=3)(blurry)
    # float32 rounding, amplified by 1/sqrt(alpha_bar) when one step starts from almost pure noise
    torch.testing.assert_close(restored, sharp, atol=1e-3, rtol=0)


def test_an_xydeblur_predictor_is_that_network_and_stays_out_of_the_graph_when_frozen():
    torch.manual_seed(0)
    net = build_network("dvsr", {**SMALL, "predictor": "xydeblur", "predictor_blocks": 1})
    y, sharp, noise = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    assert torch.equal(net.predict(y), net.predictor(y))
    net.predictor.requires_grad_(False)
    x_init, predicted = net(y, sharp, torch.full((1,), 0.5), noise)
    assert not x_init.requires_grad and predicted.requires_grad


def test_an_unknown_predictor_is_a_model_error():
    from deblur.errors import ModelError

    with pytest.raises(ModelError, match="predictor=resnet"):
        build_network("dvsr", {**SMALL, "predictor": "resnet"})


def test_a_prediction_conditioned_denoiser_sees_g_of_y_and_grows_from_one_that_did_not():
    torch.manual_seed(0)
    paper = model()
    grown = build_network("dvsr", {**SMALL, "condition": "prediction"})
    grown.load_state_dict(paper.state_dict())
    z, level, y = torch.randn(1, 3, 16, 16), torch.full((1,), 0.5), torch.rand(1, 3, 16, 16)
    x_init = paper.predict(y)
    with torch.no_grad():
        # zero weights on the new input: the same function as before training goes on
        torch.testing.assert_close(grown.denoise(z, level, y, x_init), paper.denoise(z, level, y, x_init))
        grown.denoiser.head.weight[:, 6:].fill_(0.1)
        assert not torch.allclose(grown.denoise(z, level, y, x_init), grown.denoise(z, level, y, x_init + 0.1))
        assert torch.equal(paper.denoise(z, level, y, x_init), paper.denoise(z, level, y, x_init + 0.1))


def test_an_unknown_condition_is_a_model_error():
    from deblur.errors import ModelError

    with pytest.raises(ModelError, match="condition=sharp"):
        build_network("dvsr", {**SMALL, "condition": "sharp"})
