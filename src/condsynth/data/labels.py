"""Label encoding: class-id maps to one-hot channels, dont-care channel, instance boundaries.

The encoding follows pix2pixHD (Wang et al., 2018) and SPADE (Park et al., 2019): a one-hot
map over the classes, optionally a channel of its own for the dont-care value, and optionally
the instance boundary map (1 where a pixel's instance id differs from a 4-neighbour's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from condsynth.config import ConditionConfig
from condsynth.errors import DataError


def instance_edges(instance: Tensor) -> Tensor:
    """Boundary map of an instance map.

    Args:
        instance: (B, H, W) integer instance ids (Cityscapes encoding: class*1000+k).
    Returns:
        (B, 1, H, W) float, 1 where a pixel's id differs from any 4-neighbour's.
    """
    horizontal = (instance[:, :, 1:] != instance[:, :, :-1]).float()   # (B, H, W-1)
    vertical = (instance[:, 1:, :] != instance[:, :-1, :]).float()     # (B, H-1, W)
    # Each difference marks the pixels on both of its sides. Padding instead of in-place writes
    # keeps this traceable, so exported models (condsynth.export) compute it in their graph.
    edge = torch.maximum(F.pad(horizontal, (1, 0)), F.pad(horizontal, (0, 1)))
    edge = torch.maximum(edge, torch.maximum(F.pad(vertical, (0, 0, 1, 0)),
                                             F.pad(vertical, (0, 0, 0, 1))))
    return edge.unsqueeze(1)


def check_label_values(label: Tensor, spec: ConditionConfig, source: str = "label map",
                       fix: str | None = None) -> None:
    """Raise a :class:`DataError` naming the bad value when a label is out of range.

    ``fix`` replaces the default advice (which suits training data, not a trained model).
    """
    num_classes = spec.num_classes
    # torch has no comparisons for uint16/uint32 tensors (16-bit PNGs, the studio's maps).
    label = label.long()
    bad = (label < 0) | ((label >= num_classes) & (label != spec.dontcare_label))
    if bool(bad.any()):
        values = torch.unique(label[bad]).tolist()
        shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        fix = fix or (f"set label.num_classes to at least {max(values) + 1}, or map these "
                      f"pixels to {spec.dontcare_label} (dont-care)")
        raise DataError(
            f"{source}: label value(s) {shown} outside 0..{num_classes - 1} "
            f"(num_classes {num_classes}, dont-care {spec.dontcare_label}). Fix: {fix}."
        )


def one_hot(label: Tensor, spec: ConditionConfig) -> Tensor:
    """One-hot encode a (B, H, W) int64 label map into (B, C, H, W) float.

    C = num_classes (+1 when ``contain_dontcare_label``). Dont-care pixels get their own channel
    when asked, otherwise an all-zero vector.
    """
    num_classes = spec.num_classes
    channels = num_classes + int(spec.contain_dontcare_label)
    label = label.long()
    # Dont-care pixels go to their own channel, or to -1, which matches no channel.
    index = torch.where(label == spec.dontcare_label,
                        num_classes if spec.contain_dontcare_label else -1, label)
    classes = torch.arange(channels, device=label.device).view(1, channels, 1, 1)
    return (index.unsqueeze(1) == classes).float()                      # (B, C, H, W)


def label_map_channels(label: Tensor, instance: Tensor | None, spec: ConditionConfig) -> Tensor:
    """One-hot (+ dont-care) (+ instance edges), (B, L, H, W), without the checks of
    :func:`condsynth.conditions.encode_label_map`: plain tensor operations, which an exported
    graph can hold."""
    channels = [one_hot(label, spec)]
    if spec.use_instance:
        channels.append(instance_edges(instance))
    return torch.cat(channels, dim=1)
