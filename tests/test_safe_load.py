"""Files that torch refuses to unpickle: the message says why, and never advises loading them
unsafely."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from condsynth import checkpoint
from condsynth.compat.official import load_official_state_dict
from condsynth.errors import CheckpointError
from condsynth.losses import load_vgg_features


class Payload:
    """Stands for any class a pickle may name (and whose code unpickling would run)."""


@pytest.fixture
def evil(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weight": Payload()}, path)
    return path


def assert_clear(err: CheckpointError, path) -> None:
    message = str(err)
    assert str(path) in message and "pickled Python objects" in message and "Payload" in message
    assert "weights_only" not in message and "trust" not in message
    assert "Fix:" in message


def test_refused_pickles_are_explained_without_unsafe_advice(evil, tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_official_state_dict(evil, "pix2pixHD generator")
    assert_clear(err.value, evil)
    with pytest.raises(CheckpointError) as err:
        load_vgg_features(nn.Sequential(nn.Conv2d(3, 4, 3)), evil, "VGG19")
    assert_clear(err.value, evil)
    run = tmp_path / "run"
    run.mkdir()
    evil.rename(run / checkpoint.TRAIN_STATE)
    with pytest.raises(CheckpointError) as err:
        checkpoint.read_train_state(run)
    assert_clear(err.value, run / checkpoint.TRAIN_STATE)


def test_a_truncated_train_state_is_a_clear_error(tmp_path):
    torch.save({"step": 3, "x": torch.zeros(1000)}, tmp_path / checkpoint.TRAIN_STATE)
    data = (tmp_path / checkpoint.TRAIN_STATE).read_bytes()
    (tmp_path / checkpoint.TRAIN_STATE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch file .*Fix: .*new run"):
        checkpoint.read_train_state(tmp_path)
