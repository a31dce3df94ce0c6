"""Finding the pairs of every dataset layout, and the errors of broken layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from condsynth.data.layouts import (
    apply_label_shift,
    available_phases,
    detect_num_classes,
    discover,
    read_classes,
    scan,
)
from condsynth.errors import DataError

from .builders import label_map, write


def test_pix2pixhd(build):
    root = build.pix2pixhd()
    layout, samples = discover(root, "pix2pixhd", use_instance=True)
    assert layout == "pix2pixhd"
    assert [s.name for s in samples] == ["img0", "img1", "img2"]
    first = samples[0]
    assert first.label == root / "train_label" / "img0.png"
    assert first.image == root / "train_img" / "img0.png"
    assert first.instance == root / "train_inst" / "img0.png"


def test_pix2pixhd_without_instance_folder(build):
    root = build.pix2pixhd(instances=False)
    _, samples = discover(root, "pix2pixhd")
    assert all(s.instance is None for s in samples)


def test_spade_custom_flat_and_per_phase(build):
    _, samples = discover(build.spade_custom(), "spade_custom")
    assert [s.name for s in samples] == ["s0", "s1", "s2"]
    assert samples[0].image.suffix == ".jpg"
    root = build.spade_custom("phased", phase="test", instances=True)
    _, samples = discover(root, "spade_custom", phase="test", use_instance=True)
    assert samples[1].label == root / "test" / "label_dir" / "s1.png"
    assert samples[1].instance == root / "test" / "instance_dir" / "s1.png"


def test_cityscapes_pairs_by_prefix_and_maps_test_to_val(build):
    root = build.cityscapes(split="val")
    layout, samples = discover(root, "cityscapes", phase="test", use_instance=True)
    assert layout == "cityscapes"
    assert [s.name for s in samples] == ["aachen_000000_000019", "aachen_000002_000019",
                                         "bremen_000001_000019"]
    first = samples[0]
    assert first.label.name == "aachen_000000_000019_gtFine_labelIds.png"
    assert first.instance.name == "aachen_000000_000019_gtFine_instanceIds.png"
    assert first.image.name == "aachen_000000_000019_leftImg8bit.png"


@pytest.mark.parametrize("nested", [True, False])
def test_ade20k_root_or_release_folder(build, nested):
    root = build.ade20k(nested=nested)
    _, train = discover(root, "ade20k", phase="train")
    _, test = discover(root, "ade20k", phase="test")
    assert [s.name for s in train] == [f"ADE_train_{i:08d}" for i in range(3)]
    assert test[0].image.parent.name == "validation"


def test_ade20k_shift_makes_other_dontcare():
    label = np.array([[0, 1, 150]])
    np.testing.assert_array_equal(apply_label_shift(label, "ade20k", 255), [[255, 0, 149]])
    np.testing.assert_array_equal(apply_label_shift(label, "pix2pixhd", 255), label)


def test_coco_stuff_test_is_val(build):
    root = build.coco_stuff()
    layout, samples = discover(root, "coco_stuff", phase="test", use_instance=True)
    assert layout == "coco_stuff"
    assert samples[0].label == root / "val_label" / "000000000000.png"
    assert samples[0].instance == root / "val_inst" / "000000000000.png"


def test_aligned_phase_folder_or_root(build):
    _, samples = discover(build.aligned(), "aligned")
    assert [s.name for s in samples] == ["0", "1"] and samples[0].label is None
    _, samples = discover(build.aligned("flat", phase=None), "aligned", phase="test")
    assert len(samples) == 2


def test_sketch_is_recursive(build):
    _, samples = discover(build.sketch(), "sketch")
    assert [s.name for s in samples] == ["a/1", "b/0", "b/2"]


@pytest.mark.parametrize(("maker", "expected"), [
    ("pix2pixhd", "pix2pixhd"), ("spade_custom", "spade_custom"), ("cityscapes", "cityscapes"),
    ("ade20k", "ade20k"), ("coco_stuff", "coco_stuff"), ("aligned", "aligned"),
])
def test_auto_detection(build, maker, expected):
    layout, samples = discover(getattr(build, maker)())
    assert layout == expected and samples


def test_auto_refuses_to_guess_a_plain_folder(build):
    with pytest.raises(DataError, match=r"plain folder of images.*--layout sketch"):
        discover(build.sketch("flat_sketch").joinpath("b"))


def test_auto_nothing_matches(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match=r"could not detect the dataset layout. Looked for: "
                                        r"gtFine/ \+ leftImg8bit/"):
        discover(tmp_path)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: dataset folder not found"):
        discover(tmp_path / "nowhere")


def test_missing_image_folder(build):
    root = build.pix2pixhd()
    for path in (root / "train_img").iterdir():
        path.unlink()
    (root / "train_img").rmdir()
    with pytest.raises(DataError, match=r"train_img: the image folder is missing"):
        discover(root, "pix2pixhd")
    _, samples = discover(root, "pix2pixhd", require_images=False)
    assert len(samples) == 3 and samples[0].image is None


def test_count_mismatch_names_the_unpaired(build):
    root = build.pix2pixhd(count=3)
    (root / "train_img" / "img1.png").unlink()
    write(root / "train_img" / "extra.png", np.zeros((4, 4, 3), np.uint8))
    write(root / "train_label" / "lonely.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"4 label maps in .*train_label but 3 images in "
                                        r".*train_img.*Label maps without an image: img1, "
                                        r"lonely\. Images without a label map: extra\."):
        discover(root, "pix2pixhd")


def test_missing_instance_folder_with_use_instance(build):
    root = build.pix2pixhd(instances=False)
    with pytest.raises(DataError, match=r"train_inst: label.use_instance is set but the instance "
                                        r"map folder is missing.*--no-instance"):
        discover(root, "pix2pixhd", use_instance=True)


def test_missing_instance_file_with_use_instance(build):
    root = build.pix2pixhd()
    (root / "train_inst" / "img2.png").unlink()
    with pytest.raises(DataError, match=r"no instance map for 1 of 3 label maps: img2.*"
                                        r"label.use_instance=false"):
        discover(root, "pix2pixhd", use_instance=True)


def test_duplicate_stems(build):
    root = build.pix2pixhd()
    write(root / "train_img" / "img0.jpg", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"img0\.(png|jpg) and .*img0\.(png|jpg) have the same"):
        discover(root, "pix2pixhd")


def test_empty_dataset(tmp_path):
    (tmp_path / "train_label").mkdir()
    (tmp_path / "train_img").mkdir()
    with pytest.raises(DataError, match=r"train_label: no label maps found"):
        discover(tmp_path, "pix2pixhd")


def test_scan_collects_instead_of_raising(build):
    root = build.pix2pixhd()
    (root / "train_img" / "img1.png").unlink()
    found = scan(root, "pix2pixhd")
    assert [s.name for s in found.samples] == ["img0", "img2"]
    assert len(found.problems) == 1 and "img1" in found.problems[0]


def test_available_phases(build):
    assert available_phases(build.pix2pixhd(phases=("test", "train")), "auto") == ["train", "test"]
    assert available_phases(build.ade20k(), "ade20k") == ["train", "val"]
    assert available_phases(build.aligned("flat", phase=None), "aligned") == ["train"]


def test_read_classes(build):
    root = build.pix2pixhd()
    assert read_classes(root) is None
    (root / "classes.json").write_text(json.dumps({"names": ["sky", "road"],
                                                   "colours": [[0, 0, 255], [80, 80, 80]]}))
    assert read_classes(root) == (["sky", "road"], [[0, 0, 255], [80, 80, 80]])
    (root / "classes.json").write_text(json.dumps({"names": ["sky"], "colours": [[0, 0, 255],
                                                                                 [1, 2, 3]]}))
    with pytest.raises(DataError, match=r"1 names but 2 colours"):
        read_classes(root)


def test_detect_num_classes(build):
    root = build.pix2pixhd()
    write(root / "train_label" / "img0.png", np.where(label_map(0) == 0, 255, 6).astype(np.uint8))
    assert detect_num_classes(root) == 7                       # 255 is dont-care, not a class
    (root / "classes.json").write_text(json.dumps({"names": list("abcdefghij")}))
    assert detect_num_classes(root) == 10
    assert detect_num_classes(build.ade20k()) == 150
    assert detect_num_classes(build.coco_stuff()) == 182
    assert detect_num_classes(build.aligned()) == 0
    assert detect_num_classes(build.spade_custom(), palette={(0, 0, 0): 0, (1, 1, 1): 3}) == 4
