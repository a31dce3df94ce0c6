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
