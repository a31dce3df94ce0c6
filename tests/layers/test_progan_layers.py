"""ProGAN's layers and losses against hand computations: the equalized learning rate's run-time
scale, pixel norm, the minibatch standard deviation, the fade-in blend, the resampling, the
WGAN-GP penalty with a target (fp32 and under bf16 autocast) and the drift term."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from condsynth.layers.progan import (
    EqualConv2d,
    EqualLinear,
    MinibatchStdDev,
    PixelNorm,
    downscale2d,
    fade,
    upscale2d,
)
from condsynth.losses import drift_penalty, gradient_penalty


def test_equalized_conv_scales_unit_weights_by_the_he_constant():
    conv = EqualConv2d(2, 1, 3)
    # Weights are stored N(0, 1): the He constant is applied at every call, not at init.
    big = EqualConv2d(64, 64, 3)
    assert abs(big.weight.std().item() - 1.0) < 0.02
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(2 * 3 * 3))     # = 1/3
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
    x = torch.ones(1, 2, 3, 3)
    # Centre pixel: 18 products 1 * 1 * (1/3) = 6, plus the bias.
    assert conv(x)[0, 0, 1, 1].item() == pytest.approx(6.5)
    # Corner: 2 channels x 4 neighbours inside the zero padding = 8/3 + 0.5.
    assert conv(x)[0, 0, 0, 0].item() == pytest.approx(8 / 3 + 0.5)
    # toRGB's gain 1 on a 1x1 kernel over 4 channels: 1/2.
    assert EqualConv2d(4, 3, 1, gain=1.0).scale == pytest.approx(0.5)


def test_equalized_linear_scale_and_gradient_of_the_stored_weight():
    linear = EqualLinear(4, 1)                      # gain sqrt(2): scale sqrt(2)/2
    with torch.no_grad():
        linear.weight.fill_(1.0)
    x = torch.ones(1, 4)
    y = linear(x)
    assert y.item() == pytest.approx(4 * math.sqrt(2) / 2)
    y.sum().backward()
    # The stored weight's gradient carries the scale (what makes the rate equal).
    assert torch.allclose(linear.weight.grad, torch.full((1, 4), math.sqrt(2) / 2))
    assert EqualLinear(512, 8192, gain=math.sqrt(2) / 4).scale == pytest.approx(
        math.sqrt(2) / 4 / math.sqrt(512))


def test_pixel_norm_divides_each_pixel_by_its_rms_over_channels():
    x = torch.zeros(1, 2, 1, 2)
    x[0, :, 0, 0] = torch.tensor([3.0, 4.0])        # mean square 12.5
    x[0, :, 0, 1] = torch.tensor([1.0, -1.0])       # mean square 1
    y = PixelNorm()(x)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([3.0, 4.0]) / math.sqrt(12.5))
    assert torch.allclose(y[0, :, 0, 1], torch.tensor([1.0, -1.0]))
    with torch.autocast("cpu", torch.bfloat16):
        low = PixelNorm()(x.bfloat16())
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), y, atol=1e-2)


def test_minibatch_stddev_groups_samples_as_the_official_code():
    # Four samples of one feature at one pixel: 0, 1, 2, 5. Group size 2 over a batch of 4
    # makes M = 2 groups, sample n in group n mod 2: {0, 2} (std 1) and {1, 5} (std 2).
    x = torch.tensor([0.0, 1.0, 2.0, 5.0]).view(4, 1, 1, 1)
    y = MinibatchStdDev(group_size=2)(x)
    assert y.shape == (4, 2, 1, 1)
    assert torch.equal(y[:, 0], x[:, 0])
    assert torch.allclose(y[:, 1].flatten(), torch.tensor([1.0, 2.0, 1.0, 2.0]), atol=1e-6)
    # Averaged over features and pixels, broadcast over the map: one group of 2 samples,
    # features with stds 1 and 3 -> 2 everywhere.
    x = torch.zeros(2, 2, 2, 2)
    x[1, 0] = 2.0
    x[1, 1] = 6.0
    y = MinibatchStdDev(group_size=4)(x)             # the group is the batch of 2
    assert torch.allclose(y[:, 2], torch.full((2, 2, 2), 2.0), atol=1e-6)
    with pytest.raises(ValueError, match="multiples of its group size 4"):
        MinibatchStdDev(4)(torch.zeros(6, 1, 4, 4))


def test_fade_blend_and_resampling():
    new, old = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 10.0)
    assert torch.equal(fade(new, old, 0.25), torch.full((1, 1, 2, 2), 2.5))
    assert fade(new, old, 0.0) is new
    assert torch.equal(fade(new, old, 1.7), old)          # clipped, as lerp_clip
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    up = upscale2d(x)
    assert torch.equal(up[0, 0], torch.tensor([[1.0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4],
                                               [3, 3, 4, 4]]))
    assert torch.equal(downscale2d(up), x)
    assert downscale2d(x).item() == 2.5


def linear_critic(weights: torch.Tensor):
    """D(x) = <w, x> per sample: its input gradient is w everywhere, of norm ||w||."""
    return lambda x: F.linear(x.flatten(1), weights.view(1, -1)).flatten()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gradient_penalty_with_a_target(precision):
    w = torch.zeros(1, 1, 2, 2)
    w[0, 0, 0, 0], w[0, 0, 1, 1] = 2.0, 2.0 * math.sqrt(2.0)      # ||w|| = sqrt(4 + 8)
    w.requires_grad_(True)
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    norm = math.sqrt(12.0)
    with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        unit = gradient_penalty(linear_critic(w), real, fake, target=1.0)
        wide = gradient_penalty(linear_critic(w), real, fake, target=750.0)
        halved = gradient_penalty(linear_critic(w), real, fake, target=1.0, norm_scale=0.5)
    tol = 1e-5 if precision == "fp32" else 2e-2          # bf16 keeps 8 bits of w
    assert unit.dtype == torch.float32
    assert unit.item() == pytest.approx((norm - 1.0) ** 2, rel=tol)
    assert wide.item() == pytest.approx((norm - 750.0) ** 2 / 750.0 ** 2, rel=tol)
    assert halved.item() == pytest.approx((norm / 2 - 1.0) ** 2, rel=tol)
    # The penalty trains D: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||.
    (grad,) = torch.autograd.grad(unit, w)
    expected = 2 * (norm - 1.0) * w.detach() / norm
    assert torch.allclose(grad, expected, rtol=5 * tol, atol=5 * tol)


def test_gradient_penalty_is_zero_at_the_target_norm():
    w = torch.full((1, 1, 2, 2), 0.5)                   # ||w|| = 1
    real, fake = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    assert gradient_penalty(linear_critic(w), real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_drift_is_the_mean_squared_real_score():
    assert drift_penalty(torch.tensor([1.0, -3.0])).item() == pytest.approx(5.0)
