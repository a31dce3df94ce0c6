"""Normalization layers chosen by a typed name instead of a string mini-language."""

from __future__ import annotations

from typing import Literal

from torch import nn

Norm = Literal["instance", "batch", "sync_batch", "none"]


def norm_layer(kind: Norm, channels: int, affine: bool = True) -> nn.Module:
    """A 2-d normalization over ``channels``.

    ``instance`` never tracks running statistics (as pix2pixHD and SPADE use it); ``sync_batch``
    is plain batch norm until distributed training converts it with
    :func:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`; ``none`` is the identity.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=affine, track_running_stats=False)
    if kind in ("batch", "sync_batch"):
        return nn.BatchNorm2d(channels, affine=affine)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected one of instance, batch, sync_batch, none")
