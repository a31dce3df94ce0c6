"""IDX files: the format itself, the MNIST/EMNIST names, EMNIST's transpose and broken files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from condsynth.config import DataConfig
from condsynth.data.idx import (
    FASHION_MNIST_CLASSES,
    find_idx_sets,
    idx_class_names,
    idx_set,
    read_idx,
    read_idx_set,
)
from condsynth.data.sources import describe_source, open_dataset
from condsynth.errors import DataError

from .builders import idx_image, write_idx

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_read_idx_round_trip(tmp_path, compress, dtype):
    values = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)   # uint8 wraps round
    read = read_idx(write_idx(tmp_path / "x-idx3", values, compress))
    assert read.dtype == values.dtype and read.dtype.isnative
    np.testing.assert_array_equal(read, values)


def test_broken_idx_files(tmp_path):
    good = tmp_path / "good"
    write_idx(good, np.zeros((3, 4, 4), np.uint8))
    raw = good.read_bytes()
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(DataError, match=r"short: truncated: the header announces shape "
                                        r"\(3, 4, 4\) \(64 bytes in all\) but the file holds 59"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\0")
    with pytest.raises(DataError, match="longer than its header says"):
        read_idx(tmp_path / "long")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match=r"png: not an IDX file \(its first bytes are 89 50 4e 47"):
        read_idx(tmp_path / "png")
    (tmp_path / "header").write_bytes(raw[:9])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(tmp_path / "header")
    packed = gzip.compress(raw)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"cut.gz: could not be decompressed.*download"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(DataError, match="missing: file not found"):
        read_idx(tmp_path / "missing")


def test_mnist_names_and_mixed_compression(build):
    root = build.idx(compress=True)
    plain = root / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress((root / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    sets = find_idx_sets(root)
    assert [(s.prefix, s.split) for s in sets] == [("", "train"), ("", "test")]
    assert idx_set(root, "test").labels == plain
    assert idx_set(root, "val").split == "test"
    images, labels = read_idx_set(idx_set(root, "train"))
    assert images.shape == (12, 6, 4) and labels.dtype == np.int64
    np.testing.assert_array_equal(images[5], idx_image(5))
    np.testing.assert_array_equal(labels[:4], [0, 1, 2, 0])


def test_emnist_is_transposed_back_and_named_by_its_mapping(build):
    root = build.idx("emnist", prefix="emnist-balanced", compress=False)
    (root / "emnist-balanced-mapping.txt").write_text("0 48\n1 65\n2 97\n")
    found = idx_set(root, "train")
    assert found.prefix == "emnist-balanced" and found.transposed
    images, _ = read_idx_set(found)
    assert images.shape == (12, 6, 4)
    np.testing.assert_array_equal(images[3], idx_image(3))
    assert idx_class_names(found, 3) == ["0", "A", "a"]


def test_several_sets_need_a_prefix(build):
    root = build.idx("emnist", prefix="emnist-letters")
    build.idx("emnist", prefix="emnist-digits")
    with pytest.raises(DataError, match=r"several IDX datasets \(emnist-digits, "
                                        r"emnist-letters\).*data.idx_prefix"):
        idx_set(root, "train")
    assert idx_set(root, "test", "emnist-digits").images.name == (
        "emnist-digits-test-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="no IDX files with the prefix 'emnist-mnist'"):
        idx_set(root, "train", "emnist-mnist")


def test_missing_pair_and_mismatched_counts(build, tmp_path):
    root = build.idx()
    (root / "train-labels-idx1-ubyte.gz").unlink()
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"no IDX files found.*without their pair"):
        idx_set(root, "train")
    other = build.idx("other")
    write_idx(other / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8), compress=True)
    with pytest.raises(DataError, match="holds 5 labels but .* holds 12 images"):
        read_idx_set(idx_set(other, "train"))


def test_idx_items(build):
    root = build.idx()
    data = DataConfig(root=str(root), channels=1, preprocess="none", flip=False)
    info = describe_source(data)
    assert (info.layout, info.kind, info.num_classes, info.count) == ("idx", "class", 3, 12)
    assert info.class_names == ["0", "1", "2"] and info.counts_per_class == [4, 4, 4]
    dataset = open_dataset(data, "train", train=False, seed=0)
    item = dataset[4]
    assert set(item) == {"image", "path", "class"}
    assert item["image"].shape == (1, 6, 4) and item["image"].dtype == torch.float32
    assert item["class"].dtype == torch.int64 and item["class"].shape == () and item["class"] == 1
    assert item["path"] == f"{root / 'train-images-idx3-ubyte.gz'}#4"
    expected = idx_image(4).astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(item["image"][0].numpy(), expected, atol=1e-6)
    assert len(open_dataset(data, "test", train=False, seed=0)) == 6
    (root / "classes.json").write_text('{"names": ["zero", "one", "two"]}')
    assert describe_source(data).class_names == ["zero", "one", "two"]


def test_idx_resized_up_to_the_crop_size(build):
    data = DataConfig(root=str(build.idx()), channels=3, preprocess="fixed", crop_size=32)
    item = open_dataset(data, "train", train=True, seed=0)[0]
    assert item["image"].shape == (3, 32, 32)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert torch.equal(item["image"][0], item["image"][2])      # grey, repeated


def test_real_fashion_mnist():
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not found in {FASHION_MNIST} (Debian package "
                    "dataset-fashion-mnist)")
    data = DataConfig(root=str(FASHION_MNIST), channels=1, preprocess="fixed", crop_size=32)
    info = describe_source(data, "test")
    assert info.layout == "idx" and info.count == 10_000
    assert info.class_names == FASHION_MNIST_CLASSES
    assert info.counts_per_class == [1000] * 10
    item = open_dataset(data, "test", train=False, seed=0)[0]
    assert item["image"].shape == (1, 32, 32) and int(item["class"]) == 9   # an ankle boot
    assert item["image"].min() == -1 and item["image"].max() > 0.5
