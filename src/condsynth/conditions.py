"""Conditions as a type: what a generator is conditioned on, the batch key that carries it, and
how it becomes the network's input.

=========  =================  ==============================================================
kind       batch key          encoded (what the networks see)
=========  =================  ==============================================================
none       (nothing)          ``None``: the generator starts from noise alone
class      ``class``          (B,) int64 ids → one-hot (B, K) float
vector     ``attributes``     (B, A) float attribute values (continuous or ±1), unchanged
label_map  ``label``          (B, H, W) int64 ids (+ ``instance``) → one-hot (+ dont-care)
                              (+ instance edges), (B, L, H, W) — pix2pixHD and SPADE's encoding
image      ``source``         (B, C, H, W) float image in [-1, 1] (sketch, A image, normals)
=========  =================  ==============================================================
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from condsynth.config import ConditionConfig
from condsynth.data.labels import check_label_values, label_map_channels
from condsynth.errors import DataError

# The batch key of each kind's condition (None: noise-only models take none).
BATCH_KEYS: dict[str, str | None] = {"none": None, "class": "class", "vector": "attributes",
                                     "label_map": "label", "image": "source"}
# Kinds whose condition is a picture the size of the output (the others are global).
SPATIAL_KINDS = ("label_map", "image")


def batch_key(spec: ConditionConfig) -> str | None:
    """Where a batch holds this condition (``label``, ``source``, ``class``, ...)."""
    return BATCH_KEYS[spec.kind]


def condition_of(batch: dict[str, Any], spec: ConditionConfig) -> Tensor | None:
    """The raw condition of a batch (``None`` for noise-only models)."""
    key = batch_key(spec)
    if key is None:
        return None
    if key not in batch:
        raise DataError(f"this model is conditioned on a {spec.kind} but the batch has no "
                        f"'{key}' (it has: {', '.join(sorted(batch))})")
    return batch[key]


def encode_condition(cond: Tensor | None, spec: ConditionConfig,
                     instance: Tensor | None = None, source: str = "label map") -> Tensor | None:
    """The generator's input for a raw condition of ``spec.kind`` (see the module table)."""
    kind = spec.kind
    if kind == "none":
        return None
    if cond is None:
        raise DataError(f"{source}: this model is conditioned on a {kind}; none was given")
    if kind == "image":
        if cond.dim() != 4 or cond.shape[1] != spec.image_channels:
            raise DataError(f"{source}: expected an image condition of shape (B, "
                            f"{spec.image_channels}, H, W), found {tuple(cond.shape)}")
        return cond.float()
    if kind == "vector":
        size = len(spec.attributes)
        if cond.dim() != 2 or cond.shape[1] != size:
            raise DataError(f"{source}: expected (B, {size}) attribute values "
                            f"({', '.join(spec.attributes)}), found {tuple(cond.shape)}")
        return cond.float()
    if kind == "class":
        return encode_class(cond, spec, source)
    return encode_label_map(cond, instance, spec, source)


def encode_class(cond: Tensor, spec: ConditionConfig, source: str = "class") -> Tensor:
    """(B,) class ids → (B, K) one-hot."""
    if cond.dim() != 1 or cond.is_floating_point():
        raise DataError(f"{source}: expected (B,) integer class ids, found "
                        f"{tuple(cond.shape)} {cond.dtype}")
    num_classes = int(spec.num_classes or 0)
    bad = (cond < 0) | (cond >= num_classes)
    if bool(bad.any()):
        raise DataError(f"{source}: class id(s) {sorted(set(cond[bad].tolist()))[:8]} outside "
                        f"0..{num_classes - 1}")
    return F.one_hot(cond.long(), num_classes).float()


def encode_label_map(label: Tensor, instance: Tensor | None, spec: ConditionConfig,
                     source: str = "label map") -> Tensor:
    """One-hot (+ dont-care) (+ instance edges) of a (B, H, W) label map: (B, L, H, W)."""
    if label.dim() != 3:
        raise DataError(f"{source}: expected a (B, H, W) integer label map, found shape "
                        f"{tuple(label.shape)}")
    if label.is_floating_point():
        raise DataError(f"{source}: expected integer class ids, found dtype {label.dtype}")
    check_label_values(label, spec, source)
    if spec.use_instance:
        if instance is None:
            raise DataError(f"{source}: this model uses instance maps (condition.use_instance) "
                            "but none was given. Fix: pass an instance map, or train with "
                            "--no-instance.")
        if instance.shape != label.shape:
            raise DataError(f"{source}: instance map shape {tuple(instance.shape)} differs from "
                            f"the label map's {tuple(label.shape)}")
    return label_map_channels(label, instance, spec)


def describe_condition(spec: ConditionConfig) -> str:
    """The condition in words, for messages: "label map", "1-channel image (a sketch)", ..."""
    if spec.kind == "image":
        return (f"{spec.image_channels}-channel image"
                + (" (a sketch)" if spec.image_channels == 1 else ""))
    return {"none": "noise only (no condition)", "class": "class",
            "vector": "attribute vector", "label_map": "label map"}[spec.kind]


def parse_attributes(text: str, names: list[str], absent: float = -1.0) -> tuple[Tensor, list[str]]:
    """``"Smiling=1,Eyeglasses=1"`` → a (1, A) attribute vector in the order of ``names``, and
    notes. Attributes the text does not name take ``absent`` (CelebA's -1: "does not hold"),
    which a note lists.

    Raises:
        ConfigError: a malformed pair, a name the model does not know, a name given twice.
    """
    import difflib

    import torch

    from condsynth.errors import ConfigError

    values: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            number = float(value) if sep else None
        except ValueError:
            number = None
        if number is None:
            raise ConfigError(f"--attributes: {item!r} is not NAME=VALUE (e.g. Smiling=1). Fix: "
                              "write NAME=VALUE pairs separated by commas.")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"--attributes: '{name}' is not an attribute of this model; {hint}"
                              f"Fix: use names among: {', '.join(names)}.")
        if name in values:
            raise ConfigError(f"--attributes names '{name}' twice. Fix: give it once.")
        values[name] = number
    unset = [n for n in names if n not in values]
    notes = [f"attributes not given are {absent:g}: {', '.join(unset)}"] if unset else []
    vector = torch.tensor([[values.get(n, absent) for n in names]], dtype=torch.float32)
    return vector, notes
