"""One way to open a run's dataset, whatever its layout: the paired layouts (label maps,
A|B images, sketches) and the toolbox's sources (image and class folders, attribute tables,
unpaired folders, IDX files)."""

from __future__ import annotations

import torch

from condsynth.config import Config
from condsynth.data.dataset import PairedDataset


def open_dataset(config: Config, phase: str = "train", train: bool = True,
                 size_multiple: int = 1) -> torch.utils.data.Dataset:
    """The dataset of ``config.data`` for ``phase``: items as the run's condition kind needs
    them (see :mod:`condsynth.conditions` for the batch keys)."""
    return PairedDataset(config.data, config.condition, phase=phase, train=train,
                         size_multiple=size_multiple, seed=config.train.seed)
