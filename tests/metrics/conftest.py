"""Fixtures of the evaluation tests: an Inception weights file of the right structure with
random values, a tiny trained run and a tiny segmenter (each made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from condsynth.metrics.inception import write_random_inception_weights


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory) -> Path:
    return write_random_inception_weights(tmp_path_factory.mktemp("inception") / "random.pth")


@pytest.fixture(scope="session")
def tiny_run(scenes, tmp_path_factory) -> Path:
    from condsynth.train import prepare_config, train
    from tests.tiny import tiny_config

    run = tmp_path_factory.mktemp("eval-run") / "run"
    config = prepare_config(tiny_config("pix2pix", extra=[f"data.root={scenes}",
                                                          "label.num_classes=null"]))
    train(config, run, progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_segmenter(scenes, tmp_path_factory) -> Path:
    from condsynth.metrics.segmentation import train_segmenter

    out = tmp_path_factory.mktemp("segmenter") / "seg"
    train_segmenter(scenes, out, steps=2, size=32, batch_size=4, base_channels=4, depth=2,
                    progress=False)
    return out
