"""Single-image sources: items of every layout, detection, determinism and the semi-supervised
split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from condsynth.config import DataConfig
from condsynth.data.dataset import tensor_to_image
from condsynth.data.layouts import available_phases, discover, resolve_layout
from condsynth.data.sources import describe_source, is_source_layout, load_source, open_dataset
from condsynth.errors import ConfigError, DataError

from .builders import COLOURS, HEIGHT, WIDTH, flat_image, write


def _open(root, layout="auto", phase="train", train=False, seed=0, **data_kw):
    data_kw.setdefault("preprocess", "none")
    data = DataConfig(root=str(root), layout=layout, **data_kw)
    return open_dataset(data, phase, train=train, seed=seed)


def _colour(image: torch.Tensor) -> list[int]:
    """The colour of a flat test image (its right-most column is never the black edge)."""
    return tensor_to_image(image)[0, -1].tolist()


def _check_image(image: torch.Tensor, channels: int = 3, size=(HEIGHT, WIDTH)) -> None:
    assert image.dtype == torch.float32 and image.shape == (channels, *size)
    assert image.min() >= -1 and image.max() <= 1


# --------------------------------------------------------------------------- items


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_items(build, channels):
    dataset = _open(build.image_folder(), "image_folder", channels=channels)
    assert len(dataset) == 3 and dataset.labeled_indices is None
    item = dataset[1]
    assert set(item) == {"image", "path"} and item["path"].endswith("1.png")
    _check_image(item["image"], channels)
    if channels == 3:
        assert _colour(item["image"]) == COLOURS[2].tolist()
    else:
        grey = COLOURS[2] @ [0.299, 0.587, 0.114]                    # ITU-R 601 luma
        assert tensor_to_image(item["image"])[0, -1, 0] == pytest.approx(grey, abs=1)


def test_class_folders_items(build):
    dataset = _open(build.class_folders())
    info = describe_source(DataConfig(root=str(build.tmp / "classes")))
    assert (info.layout, info.kind, info.num_classes) == ("class_folders", "class", 3)
    assert info.class_names == ["c0", "c1", "c2"] and info.counts_per_class == [2, 3, 1]
    assert [int(dataset[i]["class"]) for i in range(len(dataset))] == [0, 0, 1, 1, 1, 2]
    item = dataset[5]
    assert set(item) == {"image", "path", "class"}
    assert item["class"].dtype == torch.int64 and item["class"].shape == ()
    assert _colour(item["image"]) == COLOURS[3].tolist() and "/c2/" in item["path"]


def test_class_ids_agree_across_splits(build):
    root = build.class_folders(counts=(1, 1, 1), phases=("train", "test"))
    for path in (root / "test" / "c1").iterdir():
        path.unlink()
    (root / "test" / "c1").rmdir()                  # the test split lacks class c1
    test = load_source(DataConfig(root=str(root)), "test")
    assert test.class_names == ["c0", "c1", "c2"] and test.classes.tolist() == [0, 2]
    assert available_phases(root, "auto") == ["train", "test"]
    with pytest.raises(DataError, match="no 'val' split folder"):
        load_source(DataConfig(root=str(root)), "val")
    with pytest.raises(DataError, match="no split folders .* no 'test' split"):
        load_source(DataConfig(root=str(build.class_folders("flat"))), "test")


def test_dataset_json_labels(build):
    root = build.image_folder("json", count=3)
    (root / "dataset.json").write_text(json.dumps(
        {"labels": [["0.png", 1], ["2.png", 0]], "classes": ["cat", "dog"]}))
    dataset = _open(root)
    assert dataset.source.layout == "class_folders" and len(dataset) == 2
    assert int(dataset[0]["class"]) == 1 and dataset[1]["path"].endswith("2.png")
    assert dataset.source.class_names == ["cat", "dog"]
    (root / "dataset.json").write_text(json.dumps({"labels": [["0.png", [1, 0]]]}))
    with pytest.raises(DataError, match=r"labels\[0\] is \['0.png', \[1, 0\]\].*attributes.csv"):
        _open(root)


def test_attributes_csv_items_and_subset(build):
    root = build.attributes_csv()
    dataset = _open(root)
    item = dataset[1]
    assert set(item) == {"image", "path", "attributes"}
    assert item["attributes"].dtype == torch.float32
    assert item["attributes"].tolist() == [-1.0, 1.0, 0.5]
    assert dataset.source.attribute_names == ["smile", "glasses", "age"]
    subset = _open(root, attributes=["age", "smile"])
    assert subset[2]["attributes"].tolist() == [0.75, 1.0]
    info = describe_source(DataConfig(root=str(root), attributes=["glasses"]))
    assert info.kind == "vector" and info.attribute_names == ["glasses"]
    assert info.num_classes is None
    with pytest.raises(ConfigError, match="'smiling' is not an attribute .* did you mean 'smile'"):
        _open(root, attributes=["smiling"])


def test_attributes_csv_errors(build):
    root = build.attributes_csv()
    (root / "attributes.csv").write_text("file,smile\n0.png,1\n1.png,yes\n")
    with pytest.raises(DataError, match=r"attributes.csv, line 3: non-numeric value in \['yes'\]"):
        _open(root)
    (root / "attributes.csv").write_text("file,smile,age\n0.png,1\n")
    with pytest.raises(DataError, match=r"line 2: 2 column\(s\), the header has 3"):
        _open(root)
    (root / "attributes.csv").write_text("file,smile\n9.png,1\n")
    with pytest.raises(DataError, match=r"9.png: file not found"):
        _open(root)[0]


def test_celeba_release(build):
    root = build.celeba()
    train = _open(root)
    assert train.source.layout == "celeba" and len(train) == 3
    assert train.source.attribute_names == ["Smiling", "Eyeglasses", "Male"]
    assert train[1]["attributes"].tolist() == [-1.0, 1.0, -1.0]
    assert train[1]["path"].endswith("img_align_celeba/000002.jpg")
    test = _open(root, phase="test", attributes=["Male"])
    assert [p.rsplit("/", 1)[1] for p in test.source.paths] == ["000005.jpg", "000006.jpg"]
    assert test[0]["attributes"].tolist() == [1.0]                # (4 + 2) % 2 == 0
    assert available_phases(root, "auto") == ["train", "val", "test"]
    with pytest.raises(ConfigError, match="did you mean 'Eyeglasses'"):
        _open(root, attributes=["Eyeglass"])
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    (root / "list_attr_celeba.txt").write_text("\n".join(lines[:-1]))
    with pytest.raises(DataError, match="announces 6 images but 5 rows follow"):
        _open(root)


def test_unpaired_items(build):
    root = build.unpaired()
    dataset = _open(root, seed=3)
    info = describe_source(DataConfig(root=str(root)))
    assert (info.layout, info.kind, info.num_classes, info.count, info.real_count) == (
        "unpaired", "unpaired", 2, 4, 5)
    item = dataset[2]
    assert set(item) == {"source", "image", "path", "class"}
    _check_image(item["source"])
    _check_image(item["image"])
    assert _colour(item["source"]) == COLOURS[2].tolist() and int(item["class"]) == 1
    assert _colour(item["image"]) == COLOURS[7].tolist() and "/A/" in item["path"]

    for i in range(5):                      # B images differ only by name: tell them by it
        write(root / "B" / f"real{i}.png", flat_image(i + 1))
    dataset = _open(root, seed=3)
    partners = [[_colour(dataset[i]["image"]) for i in range(4)] for _ in range(2)]
    assert partners[0] == partners[1]
    dataset.set_epoch(1)
    assert [_colour(dataset[i]["image"]) for i in range(4)] != partners[0]


def test_unpaired_without_labels(build):
    root = build.unpaired()
    for path in sorted((root / "A").rglob("*.png")):
        path.rename(root / "A" / f"{path.parent.name}_{path.name}")
    item = _open(root)[0]
    assert set(item) == {"source", "image", "path"}


# --------------------------------------------------------------------------- determinism


def test_items_depend_on_seed_epoch_and_index_only(build):
    root = build.class_folders(counts=(8,))

    def images(seed, epoch):
        dataset = _open(root, train=True, seed=seed, flip=True)
        dataset.set_epoch(epoch)
        return torch.stack([dataset[i]["image"] for i in range(len(dataset))])

    first = images(0, 0)
    assert torch.equal(first, images(0, 0))
    assert not torch.equal(first, images(0, 1))            # other flips
    assert not torch.equal(first, images(1, 0))
    flipped = first[:, :, :, -1].amax(dim=(1, 2)) == -1     # black column now on the right
    assert 0 < int(flipped.sum()) < 8


def test_preprocess_fixed_is_a_plain_resize(build):
    dataset = _open(build.image_folder(), "image_folder", preprocess="fixed", crop_size=40,
                    train=True)
    assert dataset[0]["image"].shape == (3, 40, 40)


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(("maker", "expected"), [
    ("class_folders", "class_folders"), ("attributes_csv", "attributes_csv"),
    ("celeba", "celeba"), ("unpaired", "unpaired"), ("idx", "idx"),
])
def test_auto_detection(build, maker, expected):
    root = getattr(build, maker)()
    assert resolve_layout(root) == expected and is_source_layout(expected)
    assert describe_source(DataConfig(root=str(root))).layout == expected


def test_detection_of_split_class_folders_and_plain_folders(build):
    assert resolve_layout(build.class_folders("split", phases=("train", "test"))) == (
        "class_folders")
    with pytest.raises(DataError, match="plain folder of images.*--layout image_folder"):
        resolve_layout(build.image_folder())


def test_paired_and_source_layouts_stay_apart(build):
    with pytest.raises(DataError, match="holds single images, not pairs"):
        discover(build.class_folders())
    with pytest.raises(DataError, match="holds pairs, not single images"):
        _open(build.pix2pixhd())
    with pytest.raises(ConfigError, match="data.channels is 2"):
        _open(build.image_folder(), "image_folder", channels=2)


# --------------------------------------------------------------------------- semi-supervised


def test_semi_supervised_split(build):
    root = build.class_folders(counts=(10, 7, 9))
    dataset = _open(root, labeled_per_class=3, seed=5)
    classes = [int(dataset[i]["class"]) for i in range(len(dataset))]
    true = dataset.source.classes
    labeled = dataset.labeled_indices
    assert labeled.tolist() == sorted(labeled.tolist()) and len(labeled) == 9
    assert np.bincount(true[labeled]).tolist() == [3, 3, 3]
    assert [c for c in classes if c >= 0] == true[labeled].tolist()
    assert [i for i, c in enumerate(classes) if c >= 0] == labeled.tolist()
    assert classes.count(-1) == 26 - 9
    assert np.array_equal(_open(root, labeled_per_class=3, seed=5).labeled_indices, labeled)
    assert not np.array_equal(_open(root, labeled_per_class=3, seed=6).labeled_indices, labeled)
    dataset.set_epoch(4)                                     # the split does not move
    assert [int(dataset[i]["class"]) for i in range(len(dataset))] == classes
    assert describe_source(DataConfig(root=str(root), labeled_per_class=3)).labeled_count == 9


def test_semi_supervised_split_keeps_test_labels_and_errors(build):
    root = build.idx(count=12, num_classes=3)
    test = _open(root, phase="test", labeled_per_class=1, channels=1)
    assert all(int(test[i]["class"]) >= 0 for i in range(len(test)))
    with pytest.raises(DataError, match=r"labeled_per_class is 5 but 3 class\(es\) have fewer "
                                        r"items: '0' has 4.*at most 4"):
        _open(root, labeled_per_class=5)
    with pytest.raises(ConfigError, match="has no class labels"):
        _open(build.attributes_csv(), labeled_per_class=1)


def test_semi_supervised_split_names_an_empty_class(build):
    root = build.class_folders(counts=(2, 2))
    (root / "c9").mkdir()
    with pytest.raises(DataError, match=r"'c9' has 0\. Fix: add items to the empty class"):
        _open(root, labeled_per_class=1)
