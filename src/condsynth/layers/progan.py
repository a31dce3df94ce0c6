"""The building blocks of ProGAN: Progressive Growing of GANs for Improved Quality, Stability,
and Variation (Karras, Aila, Laine and Lehtinen, ICLR 2018), section 4 and appendix A.

- :class:`EqualConv2d`, :class:`EqualLinear`: the *equalized learning rate*. Weights are
  stored N(0, 1) and scaled at every call by the He constant ``gain / sqrt(fan_in)``, so Adam's
  step is the same relative size for every layer (section 4.1).
- :class:`PixelNorm`: *pixelwise feature vector normalization*, ``x / sqrt(mean_c x^2 + eps)``
  at every pixel (section 4.2), after every convolution of the generator.
- :class:`MinibatchStdDev`: the *minibatch standard deviation* (section 3): the standard
  deviation of every feature over a group of samples, averaged into one number per group, as
  one more constant feature map.
- :func:`upscale2d` (nearest neighbour) and :func:`downscale2d` (2x2 average pooling), the
  resampling of the growing networks, and :func:`fade` (the blend of a new block with the
  resampled output of the previous level while it is faded in).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HE_GAIN = math.sqrt(2.0)       # the He constant's gain for (leaky) ReLU layers


class EqualConv2d(nn.Module):
    """A convolution with an equalized learning rate: (B, in, H, W) → (B, out, H, W) ("same"
    padding, odd kernel). The weight is N(0, 1) and multiplied at run time by
    ``gain / sqrt(in * kernel^2)``; the bias starts at zero and is added unscaled."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 gain: float = HE_GAIN) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"EqualConv2d takes odd kernel sizes, not {kernel_size}")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        out, inp, k, _ = self.weight.shape
        return f"{inp}, {out}, kernel_size={k}, scale={self.scale:.4g}"


class EqualLinear(nn.Module):
    """A fully connected layer with an equalized learning rate: (B, in) → (B, out); the weight
    N(0, 1) times ``gain / sqrt(in)`` at run time, the bias from zero."""

    def __init__(self, in_features: int, out_features: int, gain: float = HE_GAIN) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"{inp}, {out}, scale={self.scale:.4g}"


class PixelNorm(nn.Module):
    """(B, C, ...) → the same, each pixel's feature vector divided by its root mean square over
    the channels: ``x * rsqrt(mean_c x^2 + eps)``. Computed in float32 under autocast (a
    bfloat16 mean of squares loses the small features), returned in the input's dtype."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.square().mean(dim=1, keepdim=True) + self.eps)).to(x.dtype)


class MinibatchStdDev(nn.Module):
    """(B, C, H, W) → (B, C + 1, H, W): appends the minibatch standard deviation map.

    The batch is split into groups of ``group_size`` samples (the batch size when smaller) the
    way the official code splits it: sample ``n`` joins group ``n mod (B / group)``. Per group,
    the standard deviation of every feature at every pixel over the group's samples
    (``sqrt(var + 1e-8)``, the biased variance) is averaged over features and pixels into one
    number, given to every sample of the group as a constant map. The batch size must be a
    multiple of the group size.
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        if group_size < 1:
            raise ValueError(f"MinibatchStdDev needs a group size of at least 1, not {group_size}")
        self.group_size = group_size
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        group = min(self.group_size, b)
        if b % group:
            raise ValueError(f"the minibatch standard deviation takes batches that are "
                             f"multiples of its group size {group}; this batch holds {b}")
        y = x.float().reshape(group, -1, c, h, w)                 # (G, M, C, H, W)
        y = y - y.mean(dim=0, keepdim=True)
        y = torch.sqrt(y.square().mean(dim=0) + self.eps)         # (M, C, H, W)
        y = y.mean(dim=(1, 2, 3)).to(x.dtype)                     # (M,)
        y = y.repeat(group)[:, None, None, None].expand(b, 1, h, w)   # sample g*M + m gets m's
        return torch.cat([x, y], dim=1)


def upscale2d(x: Tensor, factor: int = 2) -> Tensor:
    """(B, C, H, W) → (B, C, H*factor, W*factor) by repeating pixels (nearest neighbour)."""
    if factor == 1:
        return x
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def downscale2d(x: Tensor, factor: int = 2) -> Tensor:
    """(B, C, H, W) → (B, C, H/factor, W/factor) by averaging factor x factor blocks."""
    if factor == 1:
        return x
    return F.avg_pool2d(x, factor)


def fade(new: Tensor, old: Tensor, t: float) -> Tensor:
    """The blend while a block fades in: ``new + (old - new) * t``, ``t`` (clipped to [0, 1])
    the weight of the previous level's resampled output (the official ``lerp_clip``): t = 1 is
    the previous level alone, t = 0 the new block alone. ``t = 1 - alpha`` of the paper."""
    t = min(max(float(t), 0.0), 1.0)
    if t == 0.0:
        return new
    return new + (old - new) * t
