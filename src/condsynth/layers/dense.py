"""Dense blocks (Huang et al., 2017, "Densely Connected Convolutional Networks") and the U-Net
built from them that refines sketches in Di & Patel's attributes → sketch → face pipeline
(2017, "Face Synthesis from Visual Attributes via Sketch using Conditional VAEs and GANs").

A dense block's every layer sees the concatenation of all earlier outputs of the block and adds
``growth`` channels of its own; transitions change the channel count with a 1x1 convolution and
halve (down) or double (up) the resolution. :class:`DenseUNet` stacks them as a U-Net: the
encoder's dense features reach the mirrored decoder level through skip connections, and a
vector (the encoded attributes) joins at the bottleneck.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BottleneckLayer(nn.Module):
    """One dense layer: BN-ReLU-conv1x1 (4*growth) - BN-ReLU-conv3x3 (growth), concatenated to
    its input. (B, C, H, W) → (B, C + growth, H, W)."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        inner = 4 * growth
        self.layers = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(),
            nn.Conv2d(in_channels, inner, 1, bias=False),
            nn.BatchNorm2d(inner), nn.ReLU(),
            nn.Conv2d(inner, growth, 3, padding=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.layers(x)], 1)


class DenseBlock(nn.Sequential):
    """``num_layers`` bottleneck layers: (B, C, H, W) → (B, C + num_layers*growth, H, W)."""

    def __init__(self, in_channels: int, growth: int, num_layers: int) -> None:
        super().__init__(*(BottleneckLayer(in_channels + i * growth, growth)
                           for i in range(num_layers)))
        self.out_channels = in_channels + num_layers * growth


class TransitionDown(nn.Sequential):
    """BN-ReLU-conv1x1-avgpool: (B, C_in, H, W) → (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.AvgPool2d(2))


class TransitionUp(nn.Module):
    """BN-ReLU-conv1x1, then nearest-neighbour up-sampling: (B, C_in, H, W) →
    (B, C_out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                                    nn.Conv2d(in_channels, out_channels, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.layers(x), scale_factor=2, mode="nearest")


class DenseUNet(nn.Module):
    """A U-Net whose levels are dense blocks, conditioned on a vector at the bottleneck.

    Args:
        in_channels: channels of the input picture (1 for a sketch).
        out_channels: channels of the output picture.
        vector_size: length of the conditioning vector (attributes); 0 for none.
        embed_size: the vector is embedded to this length (Linear-ReLU), tiled over the
            bottleneck and concatenated to it.
        ngf: channels of the stem convolution.
        growth: channels each dense layer adds.
        layers_per_block: dense layers per block.
        levels: halvings of the resolution; H and W must be multiples of 2**levels.
    Forward: (B, in_channels, H, W) picture, (B, vector_size) vector →
    (B, out_channels, H, W) in [-1, 1].
    """

    def __init__(self, in_channels: int, out_channels: int, vector_size: int, embed_size: int,
                 ngf: int = 64, growth: int = 16, layers_per_block: int = 4,
                 levels: int = 3) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError("a dense U-Net needs at least one level")
        self.vector_size = vector_size
        self.stem = nn.Conv2d(in_channels, ngf, 3, padding=1, bias=False)
        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        skip_channels = []
        channels = ngf
        for _ in range(levels):
            block = DenseBlock(channels, growth, layers_per_block)
            self.down_blocks.append(block)
            skip_channels.append(block.out_channels)
            channels = block.out_channels // 2
            self.downs.append(TransitionDown(block.out_channels, channels))
        self.embed = None
        if vector_size:
            self.embed = nn.Sequential(nn.Linear(vector_size, embed_size), nn.ReLU())
        joint_in = channels + (embed_size if vector_size else 0)
        self.joint = nn.Sequential(nn.Conv2d(joint_in, channels, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(channels), nn.ReLU())
        self.up_blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for skip in reversed(skip_channels):
            block = DenseBlock(channels, growth, layers_per_block)
            self.up_blocks.append(block)
            self.ups.append(TransitionUp(block.out_channels, skip // 2))
            channels = skip // 2 + skip                 # up-sampled, then the skip beside it
        self.out = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(),
                                 nn.Conv2d(channels, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, x: Tensor, vector: Tensor | None = None) -> Tensor:
        x = self.stem(x)
        skips = []
        for block, down in zip(self.down_blocks, self.downs, strict=True):
            x = block(x)
            skips.append(x)
            x = down(x)                                  # (B, C, H / 2**level, W / 2**level)
        if self.embed is not None:
            if vector is None:
                raise ValueError("this dense U-Net is conditioned on a vector; none was given")
            code = self.embed(vector)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, code.to(x.dtype)], 1)
        x = self.joint(x)
        for block, up in zip(self.up_blocks, self.ups, strict=True):
            x = torch.cat([up(block(x)), skips.pop()], 1)
        return self.out(x)
