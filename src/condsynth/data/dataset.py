"""The torch Dataset of (label map [, instance map], image) pairs, A|B pairs or sketches.

Items are deterministic functions of ``(seed, epoch, index)``: each one draws its crop and flip
from ``np.random.default_rng([seed, epoch, index])`` and never from global random state, so
any worker count, and a resumed run, see exactly the same items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from condsynth.config import ConditionConfig, DataConfig
from condsynth.data.io import load_palette, read_image, read_instance, read_label
from condsynth.data.labels import check_label_values
from condsynth.data.layouts import IMAGE_CONDITION_LAYOUTS, Sample, apply_label_shift, discover
from condsynth.data.sketches import (
    XDoGParams,
    image_sketch,
    load_sketch,
    random_xdog_params,
    sketch_to_tensor,
)
from condsynth.data.transforms import apply_image, apply_label, draw_params
from condsynth.errors import ConfigError, DataError

__all__ = ["PairedDataset", "image_to_tensor", "tensor_to_image"]


def image_to_tensor(arr: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 → (3, H, W) float32 in [-1, 1]."""
    # The arithmetic runs in numpy: data loading stays single-threaded, so it never waits for
    # torch's thread pool (which on a busy machine costs milliseconds per tiny operation).
    # The result is a fresh array: arrays straight from PIL are read-only.
    scaled = np.asarray(arr, dtype=np.float32).transpose(2, 0, 1) / np.float32(127.5) - 1.0
    return torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))


def tensor_to_image(t: Tensor) -> np.ndarray:
    """(3, H, W) float in [-1, 1] → (H, W, 3) uint8 (values outside [-1, 1] are clamped)."""
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected a (3, H, W) or (1, H, W) image tensor, found {tuple(t.shape)}")
    t = t.detach().float().cpu().clamp(-1.0, 1.0).add(1.0).mul(127.5).round()
    arr = t.to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


class PairedDataset(torch.utils.data.Dataset):
    """Items of a dataset folder, transformed for training or evaluation.

    Label layouts give ``{"label": (H, W) int64, "image": (3, H, W) float in [-1, 1],
    "path": label map path}`` plus ``"instance": (H, W) int64`` when ``label.use_instance``.
    The ``aligned`` layout gives ``{"source": (3, H, W), "image": (3, H, W), "path"}`` with
    ``data.direction`` choosing which half is the input; ``sketch`` gives ``{"image", "path"}``,
    plus ``"source"``: the image's XDoG line drawing (1, H, W) when ``data.line_extraction`` asks
    for it (with ``xdog_random`` the parameters are drawn per item in training; evaluation items
    use the defaults); ``sketch_pairs`` gives ``{"source": (1, H, W) sketch, "image", "path":
    sketch path}``. Sketches are in [-1, 1] with white paper 1 and black lines -1. ``normals``
    gives ``{"source": (3, H, W) normals, "image": (3, H, W) image, "path": normals path}``
    (``data.direction`` BtoA swaps them: the image is the input, the normals the target); a
    flipped item's normals have their x component negated.

    Args:
        data: where the data is and how it is preprocessed.
        label: class count (must be resolved for label layouts), dont-care value, instances.
        phase: which split to read (``train``, ``test``, ``val``).
        train: random crops and flips; False gives centre crops and no flips.
        size_multiple: output H and W are rounded to a multiple of this (network down-sampling).
        seed: with the epoch and the index, fixes every random draw.
    """

    def __init__(self, data: DataConfig, label: ConditionConfig, phase: str = "train",
                 train: bool = True, size_multiple: int = 1, seed: int = 0) -> None:
        if not data.root:
            raise ConfigError("data.root is empty. Fix: give the dataset folder (--data DIR).")
        self.data = data
        self.label_config = label
        self.phase = phase
        self.train = train
        self.size_multiple = size_multiple
        self.seed = seed
        self.epoch = 0
        self.layout, samples = discover(data.root, data.layout, phase,
                                        use_instance=label.use_instance)
        if data.max_items is not None:
            samples = samples[: data.max_items]
        self.samples: list[Sample] = samples
        self.has_labels = self.layout not in IMAGE_CONDITION_LAYOUTS
        if self.has_labels and label.num_classes is None:
            raise ConfigError("label.num_classes is not resolved. Fix: set label.num_classes, or "
                              "resolve it first with condsynth.data.layouts.detect_num_classes.")
        self.palette = load_palette(data.palette) if data.palette else None

    def set_epoch(self, epoch: int) -> None:
        """Draw fresh crops and flips for a new epoch (call before each epoch, in every rank).

        DataLoader workers hold a copy of the dataset taken when their iterator starts, so with
        ``persistent_workers=True`` a later ``set_epoch`` does not reach them.
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.layout == "aligned":
            return self._aligned_item(sample, rng)
        if self.layout == "sketch":
            return self._image_item(sample, rng)
        if self.layout == "sketch_pairs":
            return self._sketch_pair_item(sample, rng)
        if self.layout == "normals":
            return self._normals_item(sample, rng)
        return self._label_item(sample, rng)

    def _image_item(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        image = read_image(sample.image)
        params = draw_params(image.shape[:2], self.data, self.train, rng, self.size_multiple,
                             str(sample.image))
        image = apply_image(image, params)
        item: dict[str, Any] = {"image": image_to_tensor(image), "path": str(sample.image)}
        if self.data.line_extraction != "none":
            # Lines are drawn at the final size, so their width is the same for every item.
            random = self.train and self.data.line_extraction == "xdog_random"
            lines = random_xdog_params(rng) if random else XDoGParams()
            item["source"] = sketch_to_tensor(image_sketch(image, lines))
        return item

    def _sketch_pair_item(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        sketch, _ = load_sketch(sample.sketch, strict=False)
        image = read_image(sample.image)
        if sketch.shape != image.shape[:2]:
            raise DataError(
                f"size mismatch: sketch {sample.sketch} is {sketch.shape[1]}x{sketch.shape[0]} "
                f"but image {sample.image} is {image.shape[1]}x{image.shape[0]} (width x "
                "height). Fix: resize one of them so that the pair matches.")
        params = draw_params(image.shape[:2], self.data, self.train, rng, self.size_multiple,
                             str(sample.sketch))
        return {"source": sketch_to_tensor(apply_image(sketch, params)),
                "image": image_to_tensor(apply_image(image, params)),
                "path": str(sample.sketch)}

    def _normals_item(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        normals = read_image(sample.normals)
        image = read_image(sample.image)
        _same_size(sample.normals, normals, sample.image, image)
        params = draw_params(image.shape[:2], self.data, self.train, rng, self.size_multiple,
                             str(sample.normals))
        normals_t = image_to_tensor(apply_image(normals, params))
        if params.flip:                       # the mirror image's normals point the other way
            normals_t[0] = -normals_t[0]
        image_t = image_to_tensor(apply_image(image, params))
        source, target = ((normals_t, image_t) if self.data.direction == "AtoB"
                          else (image_t, normals_t))
        return {"source": source, "image": target, "path": str(sample.normals)}

    def _label_item(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        spec = self.label_config
        label = apply_label_shift(read_label(sample.label, self.palette), self.layout,
                                  spec.dontcare_label)
        check_label_values(torch.from_numpy(label)[None], spec, source=str(sample.label))
        image = read_image(sample.image)
        _same_size(sample.label, label, sample.image, image)
        instance = None
        if spec.use_instance:
            if sample.instance is None:   # discover() already refuses this; keep the promise
                raise DataError(f"{sample.label}: no instance map for '{sample.name}'. Fix: add "
                                "it, or train without instances (--no-instance).")
            instance = read_instance(sample.instance)
            _same_size(sample.label, label, sample.instance, instance)
        params = draw_params(label.shape, self.data, self.train, rng, self.size_multiple,
                             str(sample.label))
        item = {"label": torch.from_numpy(apply_label(label, params)),
                "image": image_to_tensor(apply_image(image, params)),
                "path": str(sample.label)}
        if instance is not None:
            item["instance"] = torch.from_numpy(apply_label(instance, params))
        return item

    def _aligned_item(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        both = read_image(sample.image)
        height, width = both.shape[:2]
        if width % 2:
            raise DataError(f"{sample.image}: an A|B image must have an even width (two halves "
                            f"side by side), found {width}x{height}. Fix: re-export the pair, "
                            "or use --layout sketch for single images.")
        left, right = both[:, : width // 2], both[:, width // 2:]
        source, target = (left, right) if self.data.direction == "AtoB" else (right, left)
        params = draw_params(source.shape[:2], self.data, self.train, rng, self.size_multiple,
                             str(sample.image))
        return {"source": image_to_tensor(apply_image(source, params)),
                "image": image_to_tensor(apply_image(target, params)),
                "path": str(sample.image)}


def _same_size(label_path: Path | None, label: np.ndarray, other_path: Path | None,
               other: np.ndarray) -> None:
    if label.shape[:2] != other.shape[:2]:
        raise DataError(
            f"size mismatch: label map {label_path} is {label.shape[1]}x{label.shape[0]} but "
            f"{other_path} is {other.shape[1]}x{other.shape[0]} (width x height). Fix: resize "
            "one of them (label maps with NEAREST) so that the pair matches.")
