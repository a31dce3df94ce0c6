"""Multi-scale structural similarity (Wang, Simoncelli and Bovik, 2003, "Multiscale structural
similarity for image quality assessment") and the diversity score built on it: the mean
pairwise MS-SSIM of several outputs for one input (lower = more diverse), as multimodal
synthesis papers report it.

The standard settings: an 11x11 Gaussian window (sigma 1.5) applied without padding, K1 = 0.01,
K2 = 0.03, five scales separated by 2x2 average pooling with the exponents
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333); contrast-structure terms and the last scale's SSIM are
clipped at 0 (as TensorFlow's ``ssim_multiscale`` does) and colour channels are averaged.
Images too small for five scales (each scale must be at least 11 pixels) use the scales that
fit, with the leading exponents renormalized to sum to 1; :func:`usable_scales` says how many.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from condsynth.errors import CondsynthError

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def usable_scales(height: int, width: int, max_scales: int = len(SCALE_WEIGHTS)) -> int:
    """How many scales of an image of this size the 11x11 window fits."""
    scales, side = 0, min(height, width)
    while scales < max_scales and side >= WINDOW:
        scales += 1
        side //= 2
    return scales


def _gaussian_filter(x: Tensor) -> Tensor:
    """Separable 11x11 Gaussian, valid region only: (B, C, H, W) -> (B, C, H-10, W-10)."""
    coords = torch.arange(WINDOW, dtype=x.dtype, device=x.device) - WINDOW // 2
    g = torch.exp(-(coords ** 2) / (2 * SIGMA ** 2))
    g = g / g.sum()
    channels = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(channels, 1, 1, WINDOW), groups=channels)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(channels, 1, WINDOW, 1), groups=channels)


def _ssim_terms(x: Tensor, y: Tensor, data_range: float) -> tuple[Tensor, Tensor]:
    """Per-image, per-channel mean SSIM and mean contrast-structure: two (B, C) tensors."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _gaussian_filter(x), _gaussian_filter(y)
    var_x = _gaussian_filter(x * x) - mu_x ** 2
    var_y = _gaussian_filter(y * y) - mu_y ** 2
    cov = _gaussian_filter(x * y) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    return (luminance * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def ms_ssim(x: Tensor, y: Tensor, value_range: tuple[float, float] = (-1.0, 1.0),
            max_scales: int = 5) -> Tensor:
    """MS-SSIM of image pairs.

    Args:
        x, y: (B, C, H, W) images with pixel values in ``value_range``.
        value_range: (black, white); values are shifted to start at 0 (SSIM's luminance term
            assumes non-negative intensities) and the range is SSIM's dynamic range L.
        max_scales: at most this many scales (5 is the standard).
    Returns:
        (B,) MS-SSIM per pair, 1 for identical images.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) batches of one shape, found "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    scales = usable_scales(x.shape[-2], x.shape[-1], max_scales)
    if scales == 0:
        raise CondsynthError(f"MS-SSIM needs images of at least {WINDOW}x{WINDOW} pixels, found "
                             f"{x.shape[-1]}x{x.shape[-2]}")
    weights = torch.tensor(SCALE_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    low, high = value_range
    data_range = high - low
    x, y = x.double() - low, y.double() - low
    value = torch.ones(x.shape[:2], dtype=torch.float64, device=x.device)   # (B, C)
    for scale in range(scales):
        ssim, cs = _ssim_terms(x, y, data_range)
        term = ssim if scale == scales - 1 else cs
        value = value * term.clamp(min=0) ** weights[scale].item()
        if scale < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return value.mean(dim=1)


def mean_pairwise_ms_ssim(samples: Tensor,
                          value_range: tuple[float, float] = (-1.0, 1.0)) -> float:
    """Mean MS-SSIM over all pairs of (K, C, H, W) outputs for one input (K >= 2)."""
    if samples.shape[0] < 2:
        raise CondsynthError("MS-SSIM diversity needs at least 2 outputs per input")
    pairs = list(itertools.combinations(range(samples.shape[0]), 2))
    first = samples[[i for i, _ in pairs]]
    second = samples[[j for _, j in pairs]]
    return float(ms_ssim(first, second, value_range).mean())
