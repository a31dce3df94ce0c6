"""Sliced Wasserstein distance: the pyramid against scipy's convolution as ProGAN's code runs it,
closed forms, normalization and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from condsynth.errors import CondsynthError
from condsynth.metrics.swd import (
    PER_IMAGE,
    DescriptorSet,
    laplacian_pyramid,
    normalize_descriptors,
    pyr_down,
    pyr_up,
    pyramid_resolutions,
    random_directions,
    sliced_wasserstein,
    swd_between,
)

GAUSS = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float64) / 256.0


def scipy_down(x):
    return scipy.ndimage.convolve(x, GAUSS[None, None], mode="mirror")[:, :, ::2, ::2]


def scipy_up(x):
    up = np.zeros(x.shape[:2] + (x.shape[2] * 2, x.shape[3] * 2))
    up[:, :, ::2, ::2] = x
    return scipy.ndimage.convolve(up, GAUSS[None, None] * 4.0, mode="mirror")


def test_pyramid_filters_match_scipy_mirror_convolution():
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 3, 32, 24))
    t = torch.from_numpy(x)
    np.testing.assert_allclose(pyr_down(t).numpy(), scipy_down(x), atol=1e-9)
    small = scipy_down(x)
    np.testing.assert_allclose(pyr_up(torch.from_numpy(small), (32, 24)).numpy(),
                               scipy_up(small), atol=1e-9)


def test_laplacian_pyramid_levels_sum_back_to_the_image():
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64) * 255
    levels = laplacian_pyramid(x, 3)
    assert [tuple(lv.shape[-2:]) for lv in levels] == [(64, 64), (32, 32), (16, 16)]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = pyr_up(rebuilt, band.shape[-2:]) + band
    torch.testing.assert_close(rebuilt, x)


def test_resolutions_run_from_full_size_down_to_16():
    assert pyramid_resolutions(64, 64) == [(64, 64), (32, 32), (16, 16)]
    assert pyramid_resolutions(32, 48) == [(32, 48), (16, 24)]
    assert pyramid_resolutions(15, 64) == []


def test_sliced_wasserstein_of_a_shifted_1d_set_is_the_shift():
    a = torch.randn(500, 1)
    directions = random_directions(1, seed=0, level_index=0)   # +-1 in one dimension
    assert sliced_wasserstein(a, a + 0.25, directions) == pytest.approx(0.25, rel=1e-5)
    assert sliced_wasserstein(a, a, random_directions(1, 0, 0)) == 0.0


def test_descriptors_are_normalized_per_channel():
    desc = torch.rand(300, 3, 7, 7) * torch.tensor([1.0, 5.0, 20.0]).view(1, 3, 1, 1) + 3
    flat = normalize_descriptors(desc).view(300, 3, 49)
    torch.testing.assert_close(flat.mean(dim=(0, 2)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(dim=(0, 2), unbiased=False), torch.ones(3), atol=1e-5,
                               rtol=0)


def images(seed, count=4, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), generator=g, dtype=torch.uint8)


def descriptor_set(batches, seed=0):
    out = DescriptorSet(tuple(batches[0].shape[-2:]), seed)
    for b in batches:
        out.add(b)
    return out


def test_swd_is_zero_for_one_set_deterministic_and_independent_of_batching():
    real, fake = images(0), images(1)
    same = swd_between(descriptor_set([real]), descriptor_set([real]))
    assert same.per_level == [0.0, 0.0] and same.resolutions == [(32, 32), (16, 16)]
    one = swd_between(descriptor_set([real]), descriptor_set([fake]), seed=0)
    split = swd_between(descriptor_set([real[:1], real[1:]]),
                        descriptor_set([fake[:3], fake[3:]]), seed=0)
    assert one.per_level == split.per_level and one.mean > 0
    assert one.mean == pytest.approx(np.mean(one.per_level))
    assert swd_between(descriptor_set([real], 7), descriptor_set([fake], 7), 7) != one
    counts = descriptor_set([real])
    assert counts.descriptors()[0].shape == (4 * PER_IMAGE, 3 * 49)


def test_swd_grows_with_the_difference():
    real = images(0, count=6)
    noisy = (real.float() + torch.randn(real.shape) * 20).clamp(0, 255).to(torch.uint8)
    flat = torch.full_like(real, 128) + torch.randint(0, 3, real.shape, dtype=torch.uint8)
    near = swd_between(descriptor_set([real]), descriptor_set([noisy])).mean
    far = swd_between(descriptor_set([real]), descriptor_set([flat])).mean
    assert 0 < near < far


def test_swd_refuses_unequal_sets():
    with pytest.raises(CondsynthError, match="equally many"):
        swd_between(descriptor_set([images(0, 4)]), descriptor_set([images(1, 3)]))
    with pytest.raises(CondsynthError, match="at least 16"):
        DescriptorSet((8, 8))
