"""Attribute tables made from class data, for attribute-conditioned methods without an
attribute dataset at hand (no CelebA offline): every image gets its class, one-hot, and two
binary attributes measured on its pixels.

=============  ===================================================================================
``Class_*``    1 for the image's class, -1 for the others (CelebA's ±1 convention)
``Bright``     1 when the mean grey level of the image's filled pixels is above the training
               split's median, else -1
``Large``      1 when the share of filled pixels (grey level above :data:`FILL_LEVEL`) is above
               the training split's median, else -1
=============  ===================================================================================

The two measured attributes are read the same way from generated images
(:func:`measure_attributes` with the medians stored in ``attributes.json``), so that a run can
be checked for whether the attributes it was asked for hold.

Output: ``OUT/train/`` and ``OUT/test/``, each PNGs and an ``attributes.csv`` (the
``attributes_csv`` layout), and ``OUT/attributes.json`` (names, class names, medians).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from condsynth.data.idx import idx_class_names, idx_set, read_idx_set
from condsynth.errors import ConfigError

FILL_LEVEL = 25          # grey levels (0..255) above this count as the item, not the ground
META_FILE = "attributes.json"


def measure(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) uint8 grey images (light item on a dark ground) → (brightness, area): the mean
    grey level of the filled pixels (0 when none) and the share of filled pixels, each (N,)."""
    filled = images > FILL_LEVEL
    area = filled.mean(axis=(1, 2))
    total = np.where(filled, images, 0).sum(axis=(1, 2), dtype=np.float64)
    count = filled.sum(axis=(1, 2))
    brightness = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return brightness.astype(np.float64), area.astype(np.float64)


def measure_attributes(images: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """(N, H, W) uint8 grey images → (N, 2) ±1 values of ``Bright`` and ``Large``, with the
    medians of ``meta`` (the ``attributes.json`` the table was written with)."""
    brightness, area = measure(images)
    return np.stack([np.where(brightness > meta["brightness_median"], 1, -1),
                     np.where(area > meta["area_median"], 1, -1)], 1)


def column_name(class_name: str) -> str:
    """A class name as an attribute column: ``Class_`` and letters, digits and underscores."""
    return "Class_" + re.sub(r"[^0-9A-Za-z]+", "_", class_name).strip("_")


def write_attributes_from_classes(idx_root: str | Path, out: str | Path, size: int = 32,
                                  max_items: int | None = None,
                                  max_test_items: int | None = None,
                                  progress: bool = True) -> dict[str, Any]:
    """Write an attribute table of IDX class data (Fashion-MNIST, MNIST, ...), see the module
    docstring. Images are padded with the ground's grey (0) to ``size`` x ``size`` (at least
    their own size). Returns a summary (counts, names, medians)."""
    out = Path(out)
    train_found, test_found = idx_set(idx_root, "train"), idx_set(idx_root, "test")
    train_images, train_labels = read_idx_set(train_found)
    test_images, test_labels = read_idx_set(test_found)
    if max_items is not None:
        train_images, train_labels = train_images[:max_items], train_labels[:max_items]
    if max_test_items is not None:
        test_images, test_labels = test_images[:max_test_items], test_labels[:max_test_items]
    height, width = train_images.shape[1:]
    if size < max(height, width):
        raise ConfigError(f"--size {size} is smaller than the images ({width}x{height}). Fix: "
                          f"--size {max(height, width)} or more (32 for the U-Nets).")
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    class_names = idx_class_names(train_found, num_classes)
    top, left = (size - height) // 2, (size - width) // 2

    def padded(images: np.ndarray) -> np.ndarray:     # measured as generated images will be
        canvas = np.zeros((len(images), size, size), np.uint8)
        canvas[:, top:top + height, left:left + width] = images
        return canvas

    train_images, test_images = padded(train_images), padded(test_images)
    brightness, area = measure(train_images)
    meta: dict[str, Any] = {
        "class_names": class_names,
        "attributes": [column_name(n) for n in class_names] + ["Bright", "Large"],
        "brightness_median": float(np.median(brightness)),
        "area_median": float(np.median(area)), "fill_level": FILL_LEVEL, "size": size,
        "source": str(idx_root)}
    counts = {}
    for split, images, labels in (("train", train_images, train_labels),
                                  ("test", test_images, test_labels)):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        measured = measure_attributes(images, meta)
        rows = ["file," + ",".join(meta["attributes"])]
        for i in tqdm(range(len(images)), desc=f"{split} images", disable=not progress):
            name = f"{i:05d}.png"
            Image.fromarray(images[i]).save(folder / name)
            onehot = np.full(num_classes, -1)
            onehot[labels[i]] = 1
            rows.append(name + "," + ",".join(str(int(v)) for v in [*onehot, *measured[i]]))
        (folder / "attributes.csv").write_text("\n".join(rows) + "\n")
        counts[split] = len(images)
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return {"out": str(out), "counts": counts, "attributes": meta["attributes"],
            "brightness_median": meta["brightness_median"], "area_median": meta["area_median"]}
