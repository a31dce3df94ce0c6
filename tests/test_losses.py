"""Loss functions against hand computations on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from condsynth.losses import (
    d_adversarial_loss,
    feature_matching_loss,
    g_adversarial_loss,
    kl_divergence,
    total_variation,
)


def test_adversarial_losses_by_hand():
    p = torch.tensor([[[[2.0, -1.0]]]])
    assert d_adversarial_loss(p, True, "lsgan") == pytest.approx(((1 - 2) ** 2 + (1 + 1) ** 2) / 2)
    assert d_adversarial_loss(p, False, "lsgan") == pytest.approx((4 + 1) / 2)
    assert d_adversarial_loss(p, True, "hinge") == pytest.approx((0 + 2) / 2)
    assert d_adversarial_loss(p, False, "hinge") == pytest.approx((3 + 0) / 2)
    bce_real = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2
    assert d_adversarial_loss(p, True, "vanilla") == pytest.approx(bce_real)
    assert g_adversarial_loss(p, "hinge") == pytest.approx(-0.5)
    assert g_adversarial_loss(p, "lsgan") == pytest.approx(2.5)


def test_multiscale_predictions_sum_over_scales_using_last_feature():
    a = [torch.zeros(1, 4, 2, 2), torch.full((1, 1, 2, 2), 1.0)]
    b = [torch.zeros(1, 4, 1, 1), torch.full((1, 1, 1, 1), 3.0)]
    assert d_adversarial_loss([a, b], False, "lsgan") == pytest.approx(1.0 + 9.0)


def test_feature_matching_by_hand():
    fake = [[torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)],
            [torch.full((1, 1, 1, 1), 3.0), torch.zeros(1, 1, 1, 1)]]
    real = [[torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 1, 1)],
            [torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, 1)]]
    # The patch maps (last entries) do not count; scales averaged; layer weight applied.
    assert feature_matching_loss(fake, real, layer_weight=2.0) == pytest.approx(
        2.0 * 0.5 * (1.0 + 2.0))


def test_kl_and_total_variation_by_hand():
    mu, logvar = torch.tensor([1.0, 0.0]), torch.tensor([0.0, math.log(4.0)])
    expected = -0.5 * ((1 + 0 - 1 - 1) + (1 + math.log(4.0) - 0 - 4))
    assert kl_divergence(mu, logvar) == pytest.approx(expected)
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    assert total_variation(x) == pytest.approx((3 + 4) / 2 + (1 + 2) / 2)
