"""PairedDataset items for every layout, determinism, and the errors of bad pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from condsynth.config import ConditionConfig, DataConfig
from condsynth.data.dataset import PairedDataset, image_to_tensor, tensor_to_image
from condsynth.errors import ConfigError, DataError

from .builders import COLOURS, HEIGHT, NUM_CLASSES, WIDTH, colour_image, label_map, write


def _dataset(root, layout="auto", num_classes=NUM_CLASSES, use_instance=False, train=False,
             preprocess="none", phase="train", **data_kw) -> PairedDataset:
    data = DataConfig(root=str(root), layout=layout, preprocess=preprocess, **data_kw)
    label = ConditionConfig(num_classes=num_classes, use_instance=use_instance)
    return PairedDataset(data, label, phase=phase, train=train)


def test_pix2pixhd_item(build):
    dataset = _dataset(build.pix2pixhd(), use_instance=True)
    assert len(dataset) == 3 and dataset.layout == "pix2pixhd"
    item = dataset[1]
    assert set(item) == {"label", "image", "instance", "path"}
    assert item["label"].dtype == torch.int64 and item["label"].shape == (HEIGHT, WIDTH)
    assert item["instance"].dtype == torch.int64 and item["instance"].shape == (HEIGHT, WIDTH)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, HEIGHT, WIDTH)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["path"].endswith("img1.png")
    np.testing.assert_array_equal(item["label"].numpy(), label_map(1))
    np.testing.assert_array_equal(tensor_to_image(item["image"]), colour_image(label_map(1)))
    np.testing.assert_array_equal(item["instance"].numpy() // 1000, label_map(1))


def test_no_instance_key_without_use_instance(build):
    assert "instance" not in _dataset(build.pix2pixhd())[0]


def test_batches_through_a_dataloader(build):
    dataset = _dataset(build.pix2pixhd(), train=True, preprocess="crop", crop_size=16)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2)))
    assert batch["label"].shape == (2, 16, 16) and batch["image"].shape == (2, 3, 16, 16)


def test_label_out_of_range_names_file_and_value(build):
    root = build.pix2pixhd()
    bad = label_map(2)
    bad[0, 0] = 9
    write(root / "train_label" / "img2.png", bad)
    dataset = _dataset(root)
    dataset[0]
    with pytest.raises(DataError, match=r"img2\.png: label value\(s\) 9 outside 0\.\.4"):
        dataset[2]


def test_dontcare_is_not_out_of_range(build):
    root = build.pix2pixhd()
    write(root / "train_label" / "img0.png", np.full((HEIGHT, WIDTH), 255, np.uint8))
    assert (_dataset(root)[0]["label"] == 255).all()


def test_unresolved_num_classes(build):
    with pytest.raises(ConfigError, match=r"label.num_classes is not resolved"):
        _dataset(build.pix2pixhd(), num_classes=None)


def test_empty_root_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data.root is empty"):
        PairedDataset(DataConfig(), ConditionConfig(num_classes=3))


def test_size_mismatch_names_both_files(build):
    root = build.pix2pixhd()
    write(root / "train_img" / "img1.png", np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8))
    with pytest.raises(DataError, match=r"label map .*train_label.img1\.png is 32x24 but "
                                        r".*train_img.img1\.png is 34x24"):
        _dataset(root)[1]


def test_instance_size_mismatch(build):
    root = build.pix2pixhd()
    write(root / "train_inst" / "img0.png", np.zeros((4, 4), np.uint16))
    with pytest.raises(DataError, match=r"train_inst.img0\.png is 4x4"):
        _dataset(root, use_instance=True)[0]


def test_colour_labels_through_the_palette(build, tmp_path):
    root = build.pix2pixhd(instances=False)
    write(root / "train_label" / "img0.png", colour_image(label_map(0)))
    palette = tmp_path / "palette.json"
    palette.write_text(json.dumps({"colours": COLOURS[:NUM_CLASSES].tolist()}))
    item = _dataset(root, palette=str(palette))[0]
    np.testing.assert_array_equal(item["label"].numpy(), label_map(0))
    with pytest.raises(DataError, match=r"looks like a colour \(RGB\) label map"):
        _dataset(root)[0]


def test_ade20k_labels_are_shifted(build):
    item = _dataset(build.ade20k(), num_classes=150)[0]
    expected = label_map(0).astype(np.int64) - 1
    expected[expected < 0] = 255
    np.testing.assert_array_equal(item["label"].numpy(), expected)


def test_coco_stuff(build):
    dataset = _dataset(build.coco_stuff(), num_classes=182, use_instance=True, phase="test")
    item = dataset[0]
    assert item["label"][0, 0] == 255 and "val_label" in item["path"]


def test_cityscapes(build):
    item = _dataset(build.cityscapes(), num_classes=35, use_instance=True)[0]
    assert item["path"].endswith("_gtFine_labelIds.png")


@pytest.mark.parametrize(("direction", "source", "target"), [("AtoB", 1, 3), ("BtoA", 3, 1)])
def test_aligned_direction(build, direction, source, target):
    item = _dataset(build.aligned(), num_classes=0, direction=direction)[0]
    assert set(item) == {"source", "image", "path"}
    assert item["source"].shape == item["image"].shape == (3, 16, 16)
    assert (tensor_to_image(item["source"]) == COLOURS[source]).all()
    assert (tensor_to_image(item["image"]) == COLOURS[target]).all()


def test_sketch(build):
    dataset = _dataset(build.sketch(), layout="sketch", num_classes=0)
    item = dataset[0]
    assert set(item) == {"image", "path"} and item["image"].shape == (3, 20, 20)


def test_max_items(build):
    assert len(_dataset(build.pix2pixhd(), max_items=2)) == 2


def test_items_depend_only_on_seed_epoch_index(build):
    root = build.pix2pixhd(size_hw=(48, 64))
    data = DataConfig(root=str(root), preprocess="crop", crop_size=16, flip=True)
    spec = ConditionConfig(num_classes=NUM_CLASSES)
    first = PairedDataset(data, spec, seed=3)
    second = PairedDataset(data, spec, seed=3)
    np.random.seed(123)                     # global state must not matter
    torch.manual_seed(123)
    a = first[1]
    np.random.seed(999)
    torch.manual_seed(999)
    b = second[1]
    assert torch.equal(a["label"], b["label"]) and torch.equal(a["image"], b["image"])
    crops = set()
    for epoch in range(6):
        first.set_epoch(epoch)
        crops.add(first[1]["label"].numpy().tobytes())
    assert len(crops) > 1, "a new epoch must draw new crops"
    first.set_epoch(0)
    assert torch.equal(first[1]["label"], a["label"])
    assert not torch.equal(PairedDataset(data, spec, seed=4)[1]["label"], a["label"])


def test_size_multiple(build):
    root = build.pix2pixhd()
    data = DataConfig(root=str(root), preprocess="none")
    item = PairedDataset(data, ConditionConfig(num_classes=NUM_CLASSES), size_multiple=16)[0]
    # 24x32 → H round(24 / 16) = 2 blocks (Python rounds half to even, as pix2pixHD does)
    assert item["label"].shape == (32, 32) and item["image"].shape == (3, 32, 32)


def test_image_tensor_round_trip():
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    tensor = image_to_tensor(arr)
    assert tensor.shape == (3, 5, 7) and tensor.min() >= -1 and tensor.max() <= 1
    np.testing.assert_array_equal(tensor_to_image(tensor), arr)
    assert (tensor_to_image(torch.full((3, 2, 2), 5.0)) == 255).all()   # clamped
