"""Gaussian and Laplacian image pyramids (Burt and Adelson, 1983): the down-sampling d(.),
the up-sampling u(.), the band-pass images and their exact reconstruction.

Two fixed resampling kernels:

- ``binomial``: the 5-tap binomial filter [1, 4, 6, 4, 1] / 16 (separable, mirrored borders) of
  ``cv2.pyrDown`` / ``pyrUp``. d blurs and keeps every other pixel, (H, W) → (ceil(H/2),
  ceil(W/2)); u puts zeros between the pixels and blurs with gain 4. Only halving pyramids.
  ProGAN's sliced Wasserstein distance (:mod:`condsynth.metrics.swd`) uses it.
- ``bilinear``: bilinear resampling to any size, with antialiasing when going down (a blur,
  then the samples), plain bilinear when going up. For pyramids whose sizes do not halve
  (LAPGAN's CIFAR pyramid 8 → 14 → 28); LAPGAN's official code resamples with ``image.scale``,
  bilinear.

A Laplacian pyramid of an image I with level sizes s_0 > s_1 > ... > s_K (finest first) is the
Gaussian pyramid I_0 = I, I_{k+1} = d(I_k), then the band-pass images h_k = I_k − u(I_{k+1})
and the low-pass residual I_K. The reconstruction I_k = u(I_{k+1}) + h_k is exact for any u:
the bands are defined as what u misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from condsynth.errors import ConfigError

Resample = Literal["binomial", "bilinear"]
Size = tuple[int, int]

# The binomial 5-tap filter of cv2.pyrDown / pyrUp (ProGAN's SWD Gaussian), separable.
BINOMIAL_TAPS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def blur(x: Tensor, gain: float = 1.0) -> Tensor:
    """(B, C, H, W) filtered by the 5x5 binomial kernel times ``gain`` per axis, with mirrored
    borders (scipy's ``mirror`` = torch's ``reflect``)."""
    channels = x.shape[1]
    taps = (BINOMIAL_TAPS * gain).to(x)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, 5).expand(channels, 1, 1, 5), groups=channels)
    return F.conv2d(x, taps.view(1, 1, 5, 1).expand(channels, 1, 5, 1), groups=channels)


def pyr_down(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2)): blur, keep every other pixel."""
    return blur(x)[:, :, ::2, ::2]


def pyr_up(x: Tensor, size: Sequence[int]) -> Tensor:
    """(B, C, h, w) -> (B, C, *size): zeros between the pixels, blur with gain 4 (per axis 2)."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return blur(up, 2.0)[:, :, : size[0], : size[1]]


def _check_binomial(larger: Sequence[int], smaller: Sequence[int]) -> None:
    expected = ((larger[0] + 1) // 2, (larger[1] + 1) // 2)
    if tuple(smaller) != expected:
        raise ConfigError(f"the binomial pyramid halves each level: below {larger[1]}x"
                          f"{larger[0]} comes {expected[1]}x{expected[0]}, not "
                          f"{smaller[1]}x{smaller[0]}. Fix: level sizes that halve, or "
                          "bilinear resampling for other ratios.")


def downsample(x: Tensor, size: Sequence[int], resample: Resample = "binomial") -> Tensor:
    """d(.): (B, C, H, W) -> (B, C, *size), a blur then the samples."""
    if resample == "binomial":
        _check_binomial(x.shape[-2:], size)
        return pyr_down(x)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=True)


def upsample(x: Tensor, size: Sequence[int], resample: Resample = "binomial") -> Tensor:
    """u(.): (B, C, h, w) -> (B, C, *size)."""
    if resample == "binomial":
        _check_binomial(size, x.shape[-2:])
        return pyr_up(x, size)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def halving_sizes(height: int, width: int, count: int) -> list[Size]:
    """``count`` level sizes from (height, width) down, each ceil(half) the one above."""
    sizes = [(height, width)]
    for _ in range(1, count):
        height, width = (height + 1) // 2, (width + 1) // 2
        sizes.append((height, width))
    return sizes


def _check_sizes(images: Tensor, sizes: Sequence[Size]) -> None:
    if not sizes or tuple(sizes[0]) != tuple(images.shape[-2:]):
        found = "no sizes" if not sizes else f"{sizes[0][1]}x{sizes[0][0]}"
        raise ConfigError(f"a pyramid starts at its images' size "
                          f"{images.shape[-1]}x{images.shape[-2]}, not at {found}")


def gaussian_pyramid(images: Tensor, sizes: Sequence[Size],
                     resample: Resample = "binomial") -> list[Tensor]:
    """[I_0, I_1, ..., I_K] of (B, C, H, W) images at ``sizes`` (finest first, the first the
    images' own size): I_{k+1} = d(I_k)."""
    _check_sizes(images, sizes)
    levels = [images]
    for size in sizes[1:]:
        levels.append(downsample(levels[-1], size, resample))
    return levels


def laplacian_pyramid(images: Tensor, sizes: Sequence[Size],
                      resample: Resample = "binomial") -> list[Tensor]:
    """[h_0, ..., h_{K-1}, I_K]: the band-pass images h_k = I_k − u(I_{k+1}), finest first,
    then the low-pass residual."""
    levels = gaussian_pyramid(images, sizes, resample)
    bands = [fine - upsample(coarse, fine.shape[-2:], resample)
             for fine, coarse in zip(levels[:-1], levels[1:], strict=True)]
    return [*bands, levels[-1]]


def reconstruct(levels: Sequence[Tensor], resample: Resample = "binomial") -> Tensor:
    """The image of a Laplacian pyramid: I_k = u(I_{k+1}) + h_k from the residual up."""
    image = levels[-1]
    for band in reversed(levels[:-1]):
        image = upsample(image, band.shape[-2:], resample) + band
    return image
