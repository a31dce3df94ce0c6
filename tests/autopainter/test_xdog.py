"""XDoG line extraction against properties checked by hand: lines where the edges are, white
where the image is flat, and each parameter moving the result the way the paper says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from condsynth.data.sketches import (
    XDoGParams,
    image_sketch,
    random_xdog_params,
    sketch_to_tensor,
    xdog,
)


def disc(size: int = 64, inside: float = 0.2, outside: float = 0.8) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """A dark disc on a light ground and the distance of each pixel to its rim."""
    ys, xs = np.mgrid[:size, :size] + 0.5
    radius = np.hypot(ys - size / 2, xs - size / 2)
    grey = np.where(radius < size / 4, inside, outside).astype(np.float32)
    return grey, np.abs(radius - size / 4)


@pytest.mark.parametrize("level", [0.0, 0.35, 1.0])
def test_flat_image_is_white_paper(level):
    # D = (1 - tau) * I >= 0 >= epsilon everywhere: not one drop of ink.
    out = xdog(np.full((32, 32), level, np.float32))
    assert out.shape == (32, 32) and out.dtype == np.float32
    assert np.all(out == 1.0)


def test_lines_follow_the_edges_and_nowhere_else():
    grey, distance = disc()
    out = xdog(grey)
    ink = out < 0.5
    assert ink.sum() > 40                               # the rim is drawn ...
    assert distance[ink].max() <= 2.5                   # ... on the rim, within 2.5 px
    assert np.all(out[distance > 6] == 1.0)             # inside and outside stay white
    # Every direction around the rim has ink: the line is closed.
    ys, xs = np.nonzero(ink)
    angles = np.arctan2(ys + 0.5 - 32, xs + 0.5 - 32)
    assert np.histogram(angles, bins=12, range=(-np.pi, np.pi))[0].min() > 0


def test_lines_lie_on_the_dark_side_of_an_edge():
    grey = np.full((16, 40), 0.8, np.float32)
    grey[:, :20] = 0.2                                  # dark left half
    ink = xdog(grey) < 0.5
    columns = np.nonzero(ink.any(axis=0))[0]
    assert columns.size and columns.min() >= 16 and columns.max() <= 19


def test_wider_sigma_draws_wider_lines():
    grey, _ = disc(96)
    thin = (xdog(grey, XDoGParams(sigma=0.6)) < 0.5).sum()
    thick = (xdog(grey, XDoGParams(sigma=1.5)) < 0.5).sum()
    assert thick > 1.5 * thin


def test_tau_nearer_one_keeps_fainter_edges():
    grey, _ = disc(64, inside=0.45, outside=0.55)       # a faint edge
    few = (xdog(grey, XDoGParams(tau=0.95, epsilon=0.0)) < 0.5).sum()
    many = (xdog(grey, XDoGParams(tau=0.995, epsilon=0.0)) < 0.5).sum()
    assert few == 0 and many > 20


def test_lower_epsilon_needs_stronger_edges():
    grey, _ = disc()
    assert (xdog(grey, XDoGParams(epsilon=-0.05)) < 1).sum() < (xdog(grey) < 1).sum()


def test_phi_sets_how_binary_the_lines_are():
    grey, _ = disc()
    soft = xdog(grey, XDoGParams(phi=10.0))
    hard = xdog(grey, XDoGParams(phi=1000.0))
    grey_levels = lambda out: ((out > 0.05) & (out < 0.95)).sum()  # noqa: E731
    assert grey_levels(hard) < grey_levels(soft)


def test_binarize_gives_black_and_white():
    grey, _ = disc()
    out = xdog(grey, XDoGParams(binarize=True, phi=20.0))
    assert set(np.unique(out)) <= {0.0, 1.0} and (out == 0).any()


def test_random_parameters_are_reproducible_and_in_range():
    draws = [random_xdog_params(np.random.default_rng([3, i])) for i in range(200)]
    assert random_xdog_params(np.random.default_rng([3, 7])) == draws[7]
    assert all(0.5 <= p.sigma <= 1.2 and 0.97 <= p.tau <= 0.99 and -0.02 <= p.epsilon <= 0
               and 50 <= p.phi <= 300 and 1.4 <= p.k <= 1.8 for p in draws)
    assert 0.15 < np.mean([p.binarize for p in draws]) < 0.45
    rng = np.random.default_rng(0)
    random_xdog_params(rng)
    assert rng.random() == np.random.default_rng(0).random(7)[6]   # always six draws


def test_image_sketch_and_tensor_conventions():
    image = np.zeros((20, 24, 3), np.uint8)
    image[:, 12:] = (200, 60, 30)
    sketch = image_sketch(image)
    assert sketch.dtype == np.uint8 and sketch.shape == (20, 24)
    assert sketch[:, 0].min() == 255 and sketch.min() < 64      # paper white, ink dark
    t = sketch_to_tensor(np.array([[255, 0]], np.uint8))
    assert t.shape == (1, 1, 2) and torch.equal(t, torch.tensor([[[1.0, -1.0]]]))
