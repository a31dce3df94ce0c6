"""Tiny class-folder data and a tiny trained DCGAN run for the toolbox's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIZE = 16
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]      # one per class


def write_class_folders(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``root/<split>/class_<c>/<i>.png``: noisy squares in the class's colour."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for c, colour in enumerate(COLOURS):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = rng.integers(0, 60, (SIZE, SIZE, 3))
                y, x = rng.integers(0, SIZE // 2, 2)
                image[y:y + SIZE // 2, x:x + SIZE // 2] = colour
                Image.fromarray(image.astype(np.uint8)).save(folder / f"{i}.png")
    return root


ATTRIBUTES = ("Smiling", "Eyeglasses", "Male")


def write_attribute_table(root: Path, count: int, size: int = 32, seed: int = 0) -> Path:
    """``root/<i>.png`` + ``root/attributes.csv`` (±1 per attribute of :data:`ATTRIBUTES`):
    a dark disc on a light ground, its colour and radius following the attributes."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["file," + ",".join(ATTRIBUTES)]
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        values = rng.choice([-1, 1], len(ATTRIBUTES))
        image = np.full((size, size, 3), 220, np.uint8)
        radius = size / 4 if values[2] > 0 else size / 6
        disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius ** 2
        image[disc] = (40, 40, 160) if values[0] > 0 else (160, 40, 40)
        if values[1] > 0:
            image[size // 3, size // 4: 3 * size // 4] = 0
        Image.fromarray(image).save(root / f"{i}.png")
        rows.append(f"{i}.png," + ",".join(str(int(v)) for v in values))
    (root / "attributes.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def class_data(tmp_path_factory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("classes"), {"train": 12, "test": 6})


@pytest.fixture(scope="session")
def dcgan_run(tmp_path_factory, class_data) -> Path:
    """A class-conditional DCGAN trained for 4 steps at 16x16."""
    from condsynth.cli import main

    run = tmp_path_factory.mktemp("dcgan") / "run"
    assert main(["train", "--method", "dcgan", "--data", str(class_data), "--run", str(run),
                 "--max-steps", "4", "--size", str(SIZE), "--batch-size", "6", "--quiet",
                 "condition.kind=class", "model.ngf=8", "model.ndf=8", "model.z_dim=12",
                 "train.tensorboard=false", "train.sample_every=2"]) == 0
    return run
