"""PatchGAN and multi-scale discriminators shared by the methods.

PatchGAN (Isola et al., pix2pix 2017) classifies overlapping patches as real or fake. pix2pixHD
(Wang et al., 2018) runs several of them on an image pyramid and returns every intermediate
feature map for the feature-matching loss; SPADE (Park et al., 2019) adds spectral norm.

The three papers' discriminators share one shape, built here by :class:`PatchDiscriminator`::

    conv k4 s2 + LeakyReLU(0.2)                                 layer 0
    [conv k4 s2 + norm + LeakyReLU(0.2)] x (num_downsampling-1)  layers 1..
    conv k4 s1 + norm + LeakyReLU(0.2)
    conv k4 s1 -> 1 channel (patch logits)                      last layer

pix2pixHD's ``n_layers_D=3`` and SPADE's ``n_layers_D=4`` both mean ``num_downsampling=3``.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.layers.norms import Norm, norm_layer

DiscriminatorNorm = Literal["instance", "batch", "sync_batch", "none"]


class PatchDiscriminator(nn.Module):
    """PatchGAN with intermediate features.

    Args:
        in_channels: channels of the (condition, image) pair concatenated.
        ndf: channels of the first layer; doubled per layer up to ``max_channels``.
        num_downsampling: stride-2 convolutions.
        norm: normalization after every convolution but the first and the last.
        spectral: spectral norm on the normalized convolutions (SPADE).
        normed_conv_bias: whether the normalized convolutions keep a bias (pix2pixHD: yes;
            SPADE and batch-norm pix2pix: no, the norm removes it anyway).
        padding: 2 as pix2pixHD/SPADE, 1 as pix2pix.
        max_channels: channel cap (512 in pix2pixHD/SPADE, 8*ndf in pix2pix).
    Forward: (B, in_channels, H, W) -> list of feature maps, the last being (B, 1, h, w) logits.
    """

    def __init__(self, in_channels: int, ndf: int = 64, num_downsampling: int = 3,
                 norm: DiscriminatorNorm = "instance", spectral: bool = False,
                 normed_conv_bias: bool = True, padding: int = 2,
                 max_channels: int = 512) -> None:
        super().__init__()

        def conv(cin: int, cout: int, stride: int, bias: bool, sn: bool) -> nn.Conv2d:
            layer = nn.Conv2d(cin, cout, 4, stride, padding, bias=bias)
            return nn.utils.spectral_norm(layer) if sn else layer

        layers = [nn.Sequential(conv(in_channels, ndf, 2, True, False), nn.LeakyReLU(0.2))]
        channels = ndf
        strides = [2] * (num_downsampling - 1) + [1]
        for stride in strides:
            out = min(channels * 2, max_channels)
            normed: list[nn.Module] = [conv(channels, out, stride, normed_conv_bias, spectral)]
            if norm != "none":
                normed.append(norm_layer(norm, out, affine=norm != "instance"))
            normed.append(nn.LeakyReLU(0.2))
            layers.append(nn.Sequential(*normed))
            channels = out
        layers.append(nn.Sequential(conv(channels, 1, 1, True, False)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` identical PatchGANs on an average-pooled pyramid; index 0 sees full resolution.

    Forward: (B, C, H, W) -> one feature list per scale (see :class:`PatchDiscriminator`).
    """

    def __init__(self, in_channels: int, num_d: int = 2, ndf: int = 64, num_downsampling: int = 3,
                 norm: DiscriminatorNorm = "instance", spectral: bool = False,
                 normed_conv_bias: bool = True, padding: int = 2,
                 max_channels: int = 512) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, num_downsampling, norm, spectral,
                               normed_conv_bias, padding, max_channels)
            for _ in range(num_d))

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        results = []
        for i, d in enumerate(self.discriminators):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            results.append(d(x))
        return results


__all__ = ["MultiscaleDiscriminator", "PatchDiscriminator", "DiscriminatorNorm", "Norm"]
