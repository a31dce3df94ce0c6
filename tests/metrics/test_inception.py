"""Finding, verifying and loading the FID Inception weights (on files the tests write: the
network's exact structure with random values)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from condsynth.errors import CheckpointError
from condsynth.metrics import inception
from condsynth.metrics.inception import (
    STANDARD_FILENAMES,
    InceptionFeatures,
    load_inception,
    resolve_inception_weights,
    sha256_file,
)


def test_the_standard_hash_is_the_one_its_file_name_carries():
    # torch.hub names a file after the first 8 hex digits of its SHA-256.
    assert all(inception.STANDARD_SHA256[:8] in name for name in STANDARD_FILENAMES)
    assert len(inception.STANDARD_SHA256) == 64


def test_missing_weights_are_a_clear_error_never_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    with pytest.raises(CheckpointError, match="never downloads") as err:
        resolve_inception_weights()
    assert STANDARD_FILENAMES[0] in str(err.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_inception_weights(tmp_path / "nope.pth")


def test_other_weights_need_the_nonstandard_flag(inception_file):
    with pytest.raises(CheckpointError, match="--allow-nonstandard-weights"):
        resolve_inception_weights(inception_file)
    weights = resolve_inception_weights(inception_file, allow_nonstandard=True)
    assert not weights.standard
    assert weights.sha256 == hashlib.sha256(inception_file.read_bytes()).hexdigest()


def test_the_standard_file_is_found_in_the_torch_hub_cache(inception_file, tmp_path,
                                                           monkeypatch):
    # Pretend the test file is the standard one, to exercise the cache look-up and the hash
    # check's success path without the real 95 MB download.
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / STANDARD_FILENAMES[1]).symlink_to(inception_file)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(inception, "STANDARD_SHA256", sha256_file(inception_file))
    weights = resolve_inception_weights()
    assert weights.standard and weights.path.name == STANDARD_FILENAMES[1]


def test_network_outputs_pool_features_and_logits(inception_file):
    weights = resolve_inception_weights(inception_file, allow_nonstandard=True)
    net = load_inception(weights)
    assert load_inception(weights) is net                  # kept for the next call
    images = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8)
    pool, logits = net(images)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    assert bool(torch.isfinite(pool).all()) and float(pool.std()) > 0
    with pytest.raises(ValueError, match="uint8"):
        net(images.float())


def test_weights_of_another_structure_or_with_code_are_refused(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, wrong)
    with pytest.raises(CheckpointError, match="do not fit"):
        InceptionFeatures(resolve_inception_weights(wrong, allow_nonstandard=True))
    pickled = tmp_path / "pickled.pth"
    torch.save({"net": torch.nn.Linear(1, 1)}, pickled)   # a module, not a state dict
    with pytest.raises(CheckpointError, match="pickled.pth is not a readable PyTorch file "
                       r"\(it holds pickled Python objects"):
        InceptionFeatures(resolve_inception_weights(pickled, allow_nonstandard=True))
