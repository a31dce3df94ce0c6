"""One way to open a run's dataset, whatever its layout: the paired layouts (label maps,
A|B images, sketches) and the toolbox's single-image sources (image and class folders,
attribute tables, unpaired folders, IDX files)."""

from __future__ import annotations

import torch

from condsynth.config import Config
from condsynth.data.dataset import PairedDataset
from condsynth.data.layouts import resolve_layout
from condsynth.data.sources import is_source_layout
from condsynth.data.sources import open_dataset as open_source_dataset


def is_source_data(config: Config, phase: str = "train") -> bool:
    """Whether the run's data is single images (a toolbox source), not pairs."""
    if not config.data.root:
        return False
    return is_source_layout(resolve_layout(config.data.root, config.data.layout, phase))


def open_dataset(config: Config, phase: str = "train", train: bool = True,
                 size_multiple: int = 1) -> torch.utils.data.Dataset:
    """The dataset of ``config.data`` for ``phase``: items as the run's condition kind needs
    them (see :mod:`condsynth.conditions` for the batch keys)."""
    if is_source_data(config, phase):
        return open_source_dataset(config.data, phase, train=train, seed=config.train.seed,
                                   size_multiple=size_multiple)
    return PairedDataset(config.data, config.condition, phase=phase, train=train,
                         size_multiple=size_multiple, seed=config.train.seed)
