"""Laplacian pyramid: the kernels against hand computations, band-pass images, exact
reconstruction, and SWD's numbers unchanged since it moved onto this module."""

from __future__ import annotations

import pytest
import torch

from condsynth.errors import ConfigError
from condsynth.layers.pyramid import (
    downsample,
    gaussian_pyramid,
    halving_sizes,
    laplacian_pyramid,
    pyr_down,
    pyr_up,
    reconstruct,
    upsample,
)
from condsynth.metrics import swd


def test_binomial_down_of_an_impulse_by_hand():
    # 1-D: [0, 0, 1, 0, 0] mirrored at the borders and filtered by [1, 4, 6, 4, 1] / 16 gives
    # [2, 4, 6, 4, 2] / 16 (the borders see the impulse twice); every other pixel: [2, 6, 2] / 16.
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 2, 2] = 1.0
    row = torch.tensor([2.0, 6.0, 2.0], dtype=torch.float64) / 16
    torch.testing.assert_close(pyr_down(x)[0, 0], torch.outer(row, row))


def test_binomial_up_by_hand():
    # [a, b] -> zeros between: [a, 0, b, 0]; mirrored: [b, 0 | a, 0, b, 0 | b, 0]; filtered by
    # 2 * [1, 4, 6, 4, 1] / 16: [(6a + 2b), 4(a + b), (a + 7b), 8b] / 8 along each axis.
    a, b = 3.0, -5.0
    column = torch.tensor([[a], [b]], dtype=torch.float64)          # varies along H only
    x = column.expand(2, 2)[None, None].clone()
    expected = torch.tensor([6 * a + 2 * b, 4 * (a + b), a + 7 * b, 8 * b],
                            dtype=torch.float64) / 8
    out = pyr_up(x, (4, 4))[0, 0]
    # Along W the input is constant: [v, 0, v, 0] filtered the same way gives v everywhere.
    for col in range(4):
        torch.testing.assert_close(out[:, col], expected)


def test_bilinear_up_by_hand():
    # align_corners=False: output pixel i of 4 samples the input at (i + 0.5) / 2 - 0.5 =
    # -0.25, 0.25, 0.75, 1.25 (clamped): a, 0.75a + 0.25b, 0.25a + 0.75b, b.
    x = torch.tensor([[[[1.0, 5.0]]]])
    out = upsample(x, (1, 4), "bilinear")
    torch.testing.assert_close(out, torch.tensor([[[[1.0, 2.0, 4.0, 5.0]]]]))


def test_bilinear_down_to_half_averages_pairs():
    # Antialiased bilinear at factor 2: a triangle of half-width 2 input pixels around the
    # output centres 1 and 3; inside the image the weights are [3, 3, 1] / 7 over pixels 0-2
    # and [1, 3, 3] / 7 over pixels 1-3, so [0, 8, 0, 0] -> [24/7, 8/7].
    x = torch.tensor([[[[0.0, 8.0, 0.0, 0.0]]]])
    out = downsample(x, (1, 2), "bilinear")
    torch.testing.assert_close(out, torch.tensor([[[[24 / 7, 8 / 7]]]]))


def test_gaussian_and_laplacian_levels_and_exact_reconstruction():
    x = torch.rand(2, 3, 28, 28, dtype=torch.float64)
    for sizes, resample in (([(28, 28), (14, 14), (7, 7)], "binomial"),
                            ([(28, 28), (14, 14), (8, 8)], "bilinear")):
        gauss = gaussian_pyramid(x, sizes, resample)
        bands = laplacian_pyramid(x, sizes, resample)
        assert [tuple(g.shape[-2:]) for g in gauss] == sizes
        assert [tuple(b.shape[-2:]) for b in bands] == sizes
        # The band targets: h_k = I_k - u(I_{k+1}); the residual is the coarsest level.
        torch.testing.assert_close(bands[0], gauss[0] - upsample(gauss[1], (28, 28), resample))
        torch.testing.assert_close(bands[1], gauss[1] - upsample(gauss[2], (14, 14), resample))
        torch.testing.assert_close(bands[2], gauss[2])
        torch.testing.assert_close(reconstruct(bands, resample), x)


def test_band_of_a_constant_image_is_zero():
    x = torch.full((1, 1, 16, 16), 0.7, dtype=torch.float64)
    bands = laplacian_pyramid(x, halving_sizes(16, 16, 3))
    torch.testing.assert_close(bands[0], torch.zeros_like(bands[0]))
    torch.testing.assert_close(bands[-1], torch.full((1, 1, 4, 4), 0.7, dtype=torch.float64))


def test_binomial_refuses_sizes_that_do_not_halve():
    with pytest.raises(ConfigError, match="bilinear"):
        gaussian_pyramid(torch.rand(1, 1, 28, 28), [(28, 28), (14, 14), (8, 8)], "binomial")
    with pytest.raises(ConfigError, match="starts at"):
        gaussian_pyramid(torch.rand(1, 1, 28, 28), [(32, 32), (16, 16)])


def test_halving_sizes_round_up():
    assert halving_sizes(40, 36, 3) == [(40, 36), (20, 18), (10, 9)]
    assert halving_sizes(7, 7, 2) == [(7, 7), (4, 4)]


def test_swd_numbers_unchanged_since_the_pyramid_moved():
    # Values printed by condsynth.metrics.swd before its pyramid moved to layers/pyramid.py
    # (same input, same seeds, one thread: the projections' float sums depend on the thread
    # count); the move must not change a bit of them.
    g = torch.Generator().manual_seed(7)
    a = (torch.rand(6, 3, 40, 36, generator=g) * 255).round().to(torch.uint8)
    b = (torch.rand(6, 3, 40, 36, generator=g) * 255).round().to(torch.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        real, fake = swd.DescriptorSet((40, 36), seed=3), swd.DescriptorSet((40, 36), seed=3)
        real.add(a)
        fake.add(b)
        result = swd.swd_between(real, fake, seed=3)
        levels = swd.laplacian_pyramid(a.float(), 2)
    finally:
        torch.set_num_threads(threads)
    assert result.resolutions == [(40, 36), (20, 18)]
    assert result.per_level == [64.75289911031723, 88.38305436074734]
    assert result.mean == 76.56797673553228
    assert [float(lv.sum()) for lv in levels] == [3725.378173828125, 824866.875]
