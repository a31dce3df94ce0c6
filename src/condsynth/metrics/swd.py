"""Sliced Wasserstein distance between image sets, as Karras et al. (2018, "Progressive Growing
of GANs for Improved Quality, Stability, and Variation", ProGAN) measure it.

Each image is split into a Laplacian pyramid whose levels run from the full resolution down to
16x16 (the last level is the low-pass residual). From every level of every image 128 random 7x7
neighbourhoods are taken as 147-d descriptors; each set's descriptors are normalized per level
and per colour channel (mean and std over all its neighbourhoods and pixels). The distance per
level is the sliced Wasserstein distance: 512 random unit directions (4 repeats of 128, as the
reference code draws them), the sorted projections compared pointwise, averaged. Like the
reference, values are reported multiplied by 1e3, per level and averaged over levels.

Neighbourhood positions and directions come from seeded generators keyed by image index and
level, so the result does not depend on the batch size and is the same for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from condsynth.errors import CondsynthError
from condsynth.layers import pyramid
from condsynth.layers.pyramid import pyr_down, pyr_up  # noqa: F401  (the SWD filters)

NEIGHBOURHOOD = 7             # descriptor side
PER_IMAGE = 128               # descriptors per image per level
DIRECTION_REPEATS = 4         # ProGAN draws its 512 directions as 4 x 128
DIRECTIONS_PER_REPEAT = 128
MIN_RESOLUTION = 16
SCALE = 1e3                   # ProGAN reports SWD x 1e3


def pyramid_resolutions(height: int, width: int) -> list[tuple[int, int]]:
    """Level sizes from (height, width) down to the last one whose smaller side is >= 16."""
    levels = []
    while min(height, width) >= MIN_RESOLUTION:
        levels.append((height, width))
        height, width = (height + 1) // 2, (width + 1) // 2
    return levels


def laplacian_pyramid(images: Tensor, num_levels: int) -> list[Tensor]:
    """Band-pass levels of (B, C, H, W) float images, finest first; the last is the low-pass
    (the binomial pyramid of :mod:`condsynth.layers.pyramid`, ``num_levels`` levels)."""
    sizes = pyramid.halving_sizes(*images.shape[-2:], num_levels)
    return pyramid.laplacian_pyramid(images, sizes, "binomial")


def neighbourhoods(level: Tensor, first_index: int, seed: int, level_index: int) -> Tensor:
    """``PER_IMAGE`` random 7x7 neighbourhoods of each image: (B * 128, C, 7, 7).

    Centres are drawn so that the neighbourhood lies inside the image; image ``first_index + i``
    always gets the same centres for a seed, whatever the batching.
    """
    b, _, h, w = level.shape
    half = NEIGHBOURHOOD // 2
    centres = np.stack([np.random.default_rng([seed, level_index, first_index + i]).integers(
        half, (h - half, w - half), size=(PER_IMAGE, 2)) for i in range(b)])   # (B, 128, 2)
    centres = torch.from_numpy(centres).to(level.device).view(-1, 2)          # (B*128, 2)
    offsets = torch.arange(-half, half + 1, device=level.device)
    rows = (centres[:, 0:1] + offsets)[:, :, None]                            # (N, 7, 1)
    cols = (centres[:, 1:2] + offsets)[:, None, :]                            # (N, 1, 7)
    image = torch.arange(b, device=level.device).repeat_interleave(PER_IMAGE)[:, None, None]
    patches = level.permute(0, 2, 3, 1)[image, rows, cols]                    # (N, 7, 7, C)
    return patches.permute(0, 3, 1, 2)


def normalize_descriptors(desc: Tensor) -> Tensor:
    """(N, C, 7, 7) -> (N, C*49): zero mean and unit std per channel over the whole set."""
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    return ((desc - mean) / std).reshape(desc.shape[0], -1)


def sliced_wasserstein(a: Tensor, b: Tensor, directions: Tensor) -> float:
    """Mean over directions of the 1-D Wasserstein-1 distance between the projections of
    (N, D) ``a`` and ``b`` on the (R, D, K) unit ``directions`` (mean over repeats of means)."""
    if a.shape != b.shape:
        raise ValueError(f"descriptor sets differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    results = []
    for dirs in directions.to(a):
        # Projections as (K, N) rows: sorting contiguous rows is 2-3x faster than sorting the
        # columns of an (N, K) matrix (minutes for ProGAN's 10k images x 128 descriptors).
        proj_a = torch.sort(dirs.t() @ a.t(), dim=1).values     # (K, N)
        proj_b = torch.sort(dirs.t() @ b.t(), dim=1).values
        results.append(float((proj_a - proj_b).abs().mean()))
    return float(np.mean(results))


def random_directions(dim: int, seed: int, level_index: int) -> Tensor:
    """(4, dim, 128) float32 unit vectors (columns), the same for a (seed, level)."""
    rng = np.random.default_rng([seed, level_index, 1 << 20])
    dirs = rng.standard_normal((DIRECTION_REPEATS, dim, DIRECTIONS_PER_REPEAT))
    dirs /= np.sqrt((dirs ** 2).sum(axis=1, keepdims=True))
    return torch.from_numpy(dirs.astype(np.float32))


class DescriptorSet:
    """Accumulates the pyramid descriptors of one image set, batch by batch.

    Args:
        size: (H, W) of every image of the set.
        seed: fixes the neighbourhood positions (give both sets the same seed).
    """

    def __init__(self, size: tuple[int, int], seed: int = 0) -> None:
        self.size = tuple(size)
        self.resolutions = pyramid_resolutions(*self.size)
        if not self.resolutions:
            raise CondsynthError(f"SWD needs images of at least {MIN_RESOLUTION}x"
                                 f"{MIN_RESOLUTION} pixels, found {self.size[1]}x{self.size[0]}")
        self.seed = seed
        self.count = 0
        self.parts: list[list[Tensor]] = [[] for _ in self.resolutions]

    def add(self, images: Tensor) -> None:
        """Add (B, 3, H, W) uint8 images (pixel values as the reference uses them)."""
        if tuple(images.shape[-2:]) != self.size:
            raise CondsynthError(f"SWD compares images of one size; found "
                                 f"{images.shape[-1]}x{images.shape[-2]} among "
                                 f"{self.size[1]}x{self.size[0]} images")
        pyramid = laplacian_pyramid(images.float(), len(self.resolutions))
        for index, level in enumerate(pyramid):
            self.parts[index].append(neighbourhoods(level, self.count, self.seed, index).cpu())
        self.count += images.shape[0]

    def descriptors(self) -> list[Tensor]:
        """Per level, the normalized (count * 128, 147) descriptors."""
        if self.count == 0:
            raise CondsynthError("SWD got no images")
        return [normalize_descriptors(torch.cat(parts)) for parts in self.parts]


@dataclass(frozen=True)
class SWDResult:
    """SWD x 1e3 per pyramid level (finest first) and their mean."""

    resolutions: list[tuple[int, int]]
    per_level: list[float]
    mean: float

    def to_dict(self) -> dict:
        return {"levels": {f"{h}x{w}": v for (h, w), v in zip(self.resolutions, self.per_level,
                                                                strict=True)},
                "mean": self.mean}


def swd_between(real: DescriptorSet, fake: DescriptorSet, seed: int = 0) -> SWDResult:
    """SWD between two accumulated sets of equally many images of one size."""
    if real.size != fake.size:
        raise CondsynthError(f"SWD needs the real and the generated images at one size: "
                             f"real {real.size[1]}x{real.size[0]}, generated "
                             f"{fake.size[1]}x{fake.size[0]}. Fix: resize one set to the "
                             "other's size, or leave swd out of --metrics.")
    if real.count != fake.count:
        raise CondsynthError(f"SWD compares equally many images: {real.count} real, "
                             f"{fake.count} generated")
    values = []
    for index, (a, b) in enumerate(zip(real.descriptors(), fake.descriptors(), strict=True)):
        directions = random_directions(a.shape[1], seed, index)
        values.append(SCALE * sliced_wasserstein(a, b, directions))
    return SWDResult(list(real.resolutions), values, float(np.mean(values)))
