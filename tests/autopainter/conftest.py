"""Fixtures of the Auto-painter tests: small synthetic photos, random VGG16 weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.losses import vgg16_feature_layers

# Tiny models: 32x32, 8 channels, 5 U-Net levels; the feature loss reads the random VGG16 file.
TINY = ["model.ngf=8", "model.ndf=8", "model.num_downs=5", "train.tensorboard=false",
        "train.sample_every=2", "train.checkpoint_every=2", "train.num_samples=2",
        "data.load_size=36", "data.crop_size=32"]


def photo(index: int, height: int = 40, width: int = 48) -> np.ndarray:
    """A colour "photo": a disc and a bar of two colours on a third, placed by ``index``."""
    rng = np.random.default_rng(index)
    colours = rng.integers(30, 226, (3, 3))
    image = np.empty((height, width, 3), np.uint8)
    image[:] = colours[0]
    ys, xs = np.mgrid[:height, :width]
    cy, cx = height // 2 + index % 5 - 2, width // 2 + index % 3 - 1
    image[(ys - cy) ** 2 + (xs - cx) ** 2 < (min(height, width) // 4) ** 2] = colours[1]
    image[4:8, 6:width - 6] = colours[2]
    return image


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """Six photos in a folder with one sub-folder (found recursively)."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(6):
        folder = root / "more" if i >= 4 else root
        folder.mkdir(exist_ok=True)
        Image.fromarray(photo(i)).save(folder / f"photo{i}.png")
    return root


@pytest.fixture(scope="session")
def vgg16_file(tmp_path_factory) -> Path:
    """VGG16's trunk up to relu4_3 with seeded random weights, in torchvision's key format."""
    torch.manual_seed(1234)
    path = tmp_path_factory.mktemp("vgg") / "vgg16-random.pth"
    torch.save({f"features.{k}": v for k, v in vgg16_feature_layers().state_dict().items()}, path)
    return path


def write_png(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
