"""MS-SSIM against hand cases: identical images, constant images, the scale count."""

from __future__ import annotations

import pytest
import torch

from condsynth.errors import CondsynthError
from condsynth.metrics.msssim import K1, mean_pairwise_ms_ssim, ms_ssim, usable_scales


def test_identical_images_score_one():
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(ms_ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert mean_pairwise_ms_ssim(torch.stack([x[0]] * 4)) == pytest.approx(1.0)


def test_constant_images_reduce_to_the_luminance_term():
    # Flat images have no variance: contrast-structure is (0 + C2) / (0 + C2) = 1 and the
    # score is the luminance term (2ab + C1) / (a^2 + b^2 + C1) of one scale (11x11 fits once),
    # on intensities shifted to start at 0 (here [-1, 1] -> [0, 2], L = 2).
    a, b = 0.2, -0.5
    c1 = (K1 * 2.0) ** 2
    x = torch.full((1, 3, 11, 11), a, dtype=torch.float64)
    y = torch.full((1, 3, 11, 11), b, dtype=torch.float64)
    a, b = a + 1, b + 1
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert float(ms_ssim(x, y)) == pytest.approx(expected, rel=1e-9)
    # The same pictures as 0..255 values give the same score.
    as_bytes = float(ms_ssim((x + 1) * 127.5, (y + 1) * 127.5, value_range=(0.0, 255.0)))
    assert as_bytes == pytest.approx(expected, rel=1e-9)


def test_more_different_pairs_score_lower():
    x = torch.rand(1, 3, 48, 48) * 2 - 1
    slight = (x + 0.05 * torch.randn_like(x)).clamp(-1, 1)
    strong = (x + 0.5 * torch.randn_like(x)).clamp(-1, 1)
    assert 1.0 > float(ms_ssim(x, slight)) > float(ms_ssim(x, strong))
    torch.testing.assert_close(ms_ssim(x, strong), ms_ssim(strong, x))


def test_scales_that_fit_the_window():
    assert usable_scales(176, 256) == 5
    assert usable_scales(64, 64) == 3
    assert usable_scales(32, 32) == 2
    with pytest.raises(CondsynthError, match="at least 11x11"):
        ms_ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(CondsynthError, match="at least 2 outputs"):
        mean_pairwise_ms_ssim(torch.zeros(1, 3, 16, 16))
