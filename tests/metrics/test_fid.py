"""FID against closed forms and a plain numpy/scipy computation; KID against a hand loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from condsynth.metrics.fid import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
    polynomial_mmd2_unbiased,
)


def diagonal_closed_form(mu1, var1, mu2, var2):
    # ||mu1 - mu2||^2 + sum(s1 + s2 - 2 sqrt(s1 s2)) for diagonal covariances
    return float(((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * np.sqrt(var1 * var2)).sum())


def test_frechet_distance_equals_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(diagonal_closed_form(mu1, var1, mu2, var2), rel=1e-10)


def test_fid_of_sampled_gaussians_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    var1, var2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 2.0, 1.5])
    a = rng.normal(mu1, np.sqrt(var1), size=(200_000, 3))
    b = rng.normal(mu2, np.sqrt(var2), size=(200_000, 3))
    assert fid_from_features(a, b) == pytest.approx(diagonal_closed_form(mu1, var1, mu2, var2),
                                                    rel=0.02)


def test_fid_from_features_equals_a_reference_numpy_scipy_computation():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(64, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(size=(80, 8)) @ rng.normal(size=(8, 8)) + 0.3
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    assert fid_from_features(a, b) == pytest.approx(reference, rel=1e-9)
    stats = feature_statistics(a.astype(np.float32))
    assert stats.mu.dtype == np.float64 and stats.sigma.shape == (8, 8) and stats.count == 64


def reference_fid(a, b):
    # The reference computation (pytorch-fid's calculate_frechet_distance), written out.
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(root).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        root = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    root = root.real
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)


def test_fewer_samples_than_dimensions_give_the_reference_distance():
    # Rank-deficient covariances: the exact computation on the samples' span agrees with the
    # reference's full-size sqrtm (whose singular input costs it accuracy: ~3e-8 relative).
    rng = np.random.default_rng(6)
    a = rng.normal(size=(20, 96)) * rng.uniform(0.5, 2, size=96)
    b = rng.normal(size=(25, 96)) * rng.uniform(0.5, 2, size=96) + 0.2
    assert fid_from_features(a, b) == pytest.approx(reference_fid(a, b), rel=1e-6)


def test_identical_sets_have_zero_fid_even_with_singular_covariances():
    rng = np.random.default_rng(3)
    few = rng.normal(size=(5, 32))          # 5 samples in 32 dimensions: rank-4 covariance
    assert abs(fid_from_features(few, few)) < 1e-3
    other = rng.normal(size=(5, 32)) + 1.0
    value = fid_from_features(few, other)
    assert np.isfinite(value) and value > 20


def test_imaginary_square_roots_are_dropped_when_tiny_and_refused_when_not():
    one = np.eye(2)
    tiny = np.diag([1.0, -1e-8])            # sqrt has an imaginary part of 1e-4: rounding
    assert np.isfinite(frechet_distance(np.zeros(2), one, np.zeros(2), tiny))
    broken = np.diag([1.0, -4.0])           # sqrt = diag(1, 2i): not a covariance at all
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(np.zeros(2), one, np.zeros(2), broken)


def test_polynomial_mmd_matches_a_hand_loop():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)) + 0.5

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / (4 * 3)
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / (5 * 4)
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_subsets_and_determinism():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 1.0
    # Subsets as large as the sets are the whole sets: every subset gives the full estimate.
    mean, std = kernel_inception_distance(x, y, num_subsets=5, subset_size=1000)
    assert mean == pytest.approx(polynomial_mmd2_unbiased(x, y), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    first = kernel_inception_distance(x, y, num_subsets=20, subset_size=10, seed=3)
    assert first == kernel_inception_distance(x, y, num_subsets=20, subset_size=10, seed=3)
    assert first != kernel_inception_distance(x, y, num_subsets=20, subset_size=10, seed=4)
    same = rng.normal(size=(4000, 4))
    near_zero, _ = kernel_inception_distance(same[:2000], same[2000:], num_subsets=3,
                                             subset_size=1000)
    assert abs(near_zero) < 0.01 < first[0]
