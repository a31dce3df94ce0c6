"""Paired transforms: one random draw, applied identically to label, instance map and image.

The preprocessing modes follow pix2pixHD (Wang et al., 2018) and SPADE (Park et al., 2019):
resize and/or crop, random horizontal flip in training, then round the size to a multiple of
the network's down-sampling factor (pix2pixHD's ``make_power_2``). Label and instance maps are
resized with NEAREST so that ids stay ids; images with BICUBIC, as pix2pixHD does.

Parameters are drawn once per item from a ``numpy.random.Generator`` the caller seeds, never
from global random state, so an item is the same in every worker and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from condsynth.config import DataConfig
from condsynth.errors import DataError

__all__ = ["TransformParams", "draw_params", "apply_label", "apply_image", "transform_pair",
           "round_to_multiple"]

Size = tuple[int, int]   # (H, W)


@dataclass(frozen=True)
class TransformParams:
    """The geometry of one item's transform. Sizes are (H, W)."""

    source_hw: Size                               # size of the arrays this applies to
    resize_hw: Size | None                        # resize first to this size; None = keep
    crop: tuple[int, int, int, int] | None        # (top, left, height, width) after the resize
    flip: bool                                    # mirror left-right after the crop
    output_hw: Size                               # final size, a multiple of size_multiple


def round_to_multiple(size_hw: Size, base: int) -> Size:
    """Round H and W to the nearest multiple of ``base`` (at least ``base``), as pix2pixHD's
    ``make_power_2`` does, so every down-sampling level of the network divides evenly."""
    if base <= 1:
        return size_hw
    height, width = (max(base, int(round(x / base)) * base) for x in size_hw)
    return height, width


def draw_params(size_hw: Size, data: DataConfig, train: bool, rng: np.random.Generator,
                size_multiple: int = 1, source: str = "image") -> TransformParams:
    """Draw one item's transform.

    Args:
        size_hw: (H, W) of the item's arrays (label, instance and image share it).
        data: preprocess mode, load/crop sizes, aspect ratio and flip.
        train: random crops and flips; in evaluation crops are centred and nothing is flipped.
        rng: the item's own generator.
        size_multiple: the output H and W are rounded to a multiple of this.
        source: names the file in error messages.
    """
    height, width = size_hw
    mode = data.preprocess
    crop_hw = data.crop_hw
    # Always draw the same three numbers, whatever the mode, so one item's stream of random
    # numbers does not depend on the configuration.
    u_top, u_left, u_flip = rng.random(3)

    resize_hw: Size | None = None
    if mode == "resize_and_crop":
        resize_hw = (max(1, round(data.load_size / data.aspect_ratio)), data.load_size)
    elif mode in ("scale_width", "scale_width_and_crop"):
        resize_hw = (max(1, round(height * data.load_size / width)), data.load_size)
    elif mode == "fixed":
        resize_hw = crop_hw
    if resize_hw == (height, width):
        resize_hw = None
    current = resize_hw or (height, width)

    crop = None
    if mode in ("resize_and_crop", "scale_width_and_crop", "crop"):
        if crop_hw[0] > current[0] or crop_hw[1] > current[1]:
            raise DataError(
                f"{source}: cannot crop {crop_hw[1]}x{crop_hw[0]} (data.crop_size "
                f"{data.crop_size}, aspect_ratio {data.aspect_ratio}) from {current[1]}x"
                f"{current[0]} (the {width}x{height} input after preprocess '{mode}'). Fix: "
                "lower data.crop_size, raise data.load_size or change data.preprocess.")
        spare_h, spare_w = current[0] - crop_hw[0], current[1] - crop_hw[1]
        if train:
            top = min(int(u_top * (spare_h + 1)), spare_h)
            left = min(int(u_left * (spare_w + 1)), spare_w)
        else:
            top, left = spare_h // 2, spare_w // 2
        crop = (top, left, *crop_hw)
        current = crop_hw

    return TransformParams(source_hw=(height, width), resize_hw=resize_hw, crop=crop,
                           flip=bool(train and data.flip and u_flip < 0.5),
                           output_hw=round_to_multiple(current, size_multiple))


def _resize_nearest(arr: np.ndarray, size_hw: Size) -> np.ndarray:
    """NEAREST resize of an integer map of any dtype (PIL cannot hold int64 ids), sampling at
    pixel centres like PIL so that labels line up with the BICUBIC-resized image."""
    in_h, in_w = arr.shape[:2]
    out_h, out_w = size_hw
    rows = np.minimum(((np.arange(out_h) + 0.5) * in_h / out_h).astype(np.int64), in_h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * in_w / out_w).astype(np.int64), in_w - 1)
    return arr[rows[:, None], cols[None, :]]


def _resize_bicubic(arr: np.ndarray, size_hw: Size) -> np.ndarray:
    out_h, out_w = size_hw
    return np.asarray(Image.fromarray(arr).resize((out_w, out_h), Image.Resampling.BICUBIC))


def _apply(arr: np.ndarray, params: TransformParams,
           resize: Callable[[np.ndarray, Size], np.ndarray]) -> np.ndarray:
    if tuple(arr.shape[:2]) != params.source_hw:
        raise DataError(f"array of size {arr.shape[1]}x{arr.shape[0]} given to a transform drawn "
                        f"for {params.source_hw[1]}x{params.source_hw[0]}; label, instance map "
                        "and image of one item must have the same size.")
    if params.resize_hw is not None:
        arr = resize(arr, params.resize_hw)
    if params.crop is not None:
        top, left, height, width = params.crop
        arr = arr[top:top + height, left:left + width]
    if params.flip:
        arr = arr[:, ::-1]
    if tuple(arr.shape[:2]) != params.output_hw:
        arr = resize(np.ascontiguousarray(arr), params.output_hw)
    return np.ascontiguousarray(arr)


def apply_label(arr: np.ndarray, params: TransformParams) -> np.ndarray:
    """Transform a (H, W) label or instance map (any integer dtype) with NEAREST resizing."""
    return _apply(arr, params, _resize_nearest)


def apply_image(arr: np.ndarray, params: TransformParams) -> np.ndarray:
    """Transform a (H, W, 3) or (H, W) uint8 image with BICUBIC resizing."""
    return _apply(arr, params, _resize_bicubic)


def transform_pair(image: np.ndarray | None, label: np.ndarray | None = None,
                   instance: np.ndarray | None = None, *, data: DataConfig, train: bool,
                   rng: np.random.Generator, size_multiple: int = 1, source: str = "image",
                   ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Draw one transform and apply it to whichever of image, label and instance are given.

    Returns ``(image, label, instance)``, each None where the input was None.
    """
    first = next((a for a in (label, image, instance) if a is not None), None)
    if first is None:
        raise ValueError("transform_pair needs at least one array")
    params = draw_params(first.shape[:2], data, train, rng, size_multiple, source)
    return (None if image is None else apply_image(image, params),
            None if label is None else apply_label(label, params),
            None if instance is None else apply_label(instance, params))
