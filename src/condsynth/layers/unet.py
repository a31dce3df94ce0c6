"""U-Net generator with skip connections between mirrored layers (pix2pix, Isola et al. 2017;
used again by Auto-painter, Liu et al. 2017).

Each encoder layer halves the resolution; each decoder layer doubles it and sees the mirrored
encoder layer's output concatenated to its input, so the condition's fine structure (label edges,
sketch lines) reaches the output without squeezing through the bottleneck.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from condsynth.layers.norms import Norm, norm_layer


def depth_for_size(height: int, width: int) -> int:
    """The U-Net depth that fits an H x W input, as the official ``unet_128`` (7 levels) and
    ``unet_256`` (8) do: the most halvings that divide both sides and leave at least 1x1 (a 1x1
    bottleneck for square powers of two), and never fewer than the two a U-Net needs."""
    depth = 2
    while height % 2 ** (depth + 1) == 0 and width % 2 ** (depth + 1) == 0:
        depth += 1
    return depth


class UNetGenerator(nn.Module):
    """pix2pix's U-Net.

    Args:
        in_channels: channels of the condition.
        out_channels: channels of the image (3).
        ngf: channels of the first encoder layer; doubled per layer up to 8*ngf.
        num_downs: encoder layers; the input side must be a multiple of 2**num_downs
            (8 for 256x256, giving a 1x1 bottleneck as in the paper).
        norm: normalization inside the network (the outermost and innermost layers have none).
        dropout: dropout 0.5 in the decoder layers next to the bottleneck, the paper's noise.
        vector_size: length of a vector (e.g. attributes) tiled over the bottleneck and
            concatenated to it before the decoder (0: none, pix2pix's U-Net).
    Forward: (B, in_channels, H, W) [, (B, vector_size)] -> (B, out_channels, H, W) in [-1, 1].
    """

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 64,
                 num_downs: int = 8, norm: Norm = "batch", dropout: bool = True,
                 vector_size: int = 0) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError("a U-Net needs at least 2 down-sampling layers")
        # Batch norm has its own shift, so the convolution before it needs no bias.
        bias = norm in ("instance", "none")
        widths = [ngf * min(2 ** i, 8) for i in range(num_downs)]   # encoder outputs
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in range(num_downs):
            cin = in_channels if i == 0 else widths[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(cin, widths[i], 4, 2, 1, bias=bias))
            if 0 < i < num_downs - 1:
                layers.append(norm_layer(norm, widths[i]))
            self.down.append(nn.Sequential(*layers))
        # Decoder, innermost first: up[j] produces the resolution of encoder layer num_downs-2-j.
        dropout_layers = max(num_downs - 5, 0)
        for j in range(num_downs):
            i = num_downs - 1 - j                       # mirrored encoder layer
            cin = widths[i] + vector_size if j == 0 else 2 * widths[i]
            if i == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(cin, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(), nn.ConvTranspose2d(cin, widths[i - 1], 4, 2, 1, bias=bias),
                          norm_layer(norm, widths[i - 1])]
                if dropout and 1 <= j <= dropout_layers:
                    layers.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: Tensor, vector: Tensor | None = None) -> Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = skips.pop()
        if vector is not None:
            planes = vector[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, planes.to(x.dtype)], 1)
        x = self.up[0](x)
        for layer in self.up[1:]:
            x = layer(torch.cat([skips.pop(), x], dim=1))
        return x
