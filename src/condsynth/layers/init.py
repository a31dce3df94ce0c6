"""Weight initialization as the papers' official code does it."""

from __future__ import annotations

from typing import Literal

from torch import nn


def init_weights(module: nn.Module, kind: Literal["normal", "xavier"] = "normal",
                 gain: float = 0.02) -> None:
    """Initialize convolutions and linear layers, and the scales of normalization layers.

    ``normal``: weights ~ N(0, gain) (pix2pix, pix2pixHD); ``xavier``: Xavier-normal with
    ``gain`` (SPADE's ``init_variance``). Biases start at 0; norm scales ~ N(1, 0.02).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.weight_orig if hasattr(m, "weight_orig") else m.weight
            if kind == "normal":
                nn.init.normal_(weight, 0.0, gain)
            else:
                nn.init.xavier_normal_(weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
