"""``check_dataset``: what a dataset holds, and every problem listed without raising."""

from __future__ import annotations

import json

import numpy as np
import pytest

from condsynth.cli import main
from condsynth.data.check import check_dataset

from .builders import colour_image, label_map, write


def test_clean_dataset_report(build):
    root = build.pix2pixhd(phases=("train", "test"))
    report = check_dataset(root)
    assert report.ok, report.problems
    assert report.layout == "pix2pixhd"
    assert [p.phase for p in report.phases] == ["train", "test"]
    train = report.phases[0]
    assert train.pairs == 3 and train.instances == 3
    assert train.image_sizes == {"32x24": 3}
    ids, counts = np.unique(np.stack([label_map(i) for i in range(3)]), return_counts=True)
    assert train.class_pixels == dict(zip(ids.tolist(), counts.tolist(), strict=True))
    assert list(train.class_pixels) == sorted(train.class_pixels)
    text = report.text()
    assert "layout: pix2pixhd" in text and "phase train: 3 item(s)" in text
    assert "32x24 ×3" in text and "OK: no problems found" in text
    assert report.to_dict()["ok"] is True


def test_class_names_from_classes_json(build):
    root = build.pix2pixhd()
    (root / "classes.json").write_text(json.dumps({"names": ["sky", "road", "car", "tree",
                                                            "person"]}))
    report = check_dataset(root, phase="train")
    assert report.num_classes == 5 and "(sky)" in report.text()


def test_every_problem_is_listed(build, tmp_path):
    root = build.pix2pixhd(count=7)
    labels, images = root / "train_label", root / "train_img"
    bad = label_map(0)
    bad[:2, :2] = 9
    write(labels / "img0.png", bad)                                      # out of range
    write(images / "img1.png", np.zeros((10, 10, 3), np.uint8))          # size mismatch
    write(labels / "img2.png", colour_image(label_map(2)))               # RGB, no palette
    data = (labels / "img3.png").read_bytes()
    (labels / "img3.png").write_bytes(data[: len(data) // 2])            # truncated
    (labels / "img4.png").unlink()
    write(labels / "img4.jpg", label_map(4), quality=100)                # JPEG label
    (images / "img5.png").unlink()                                       # unpaired label
    (images / "img6.png").write_text("not an image")                     # unreadable image

    report = check_dataset(root, num_classes=5)
    assert not report.ok
    problems = "\n".join(report.problems)
    assert "img0.png: label value(s) 9 (4 px) outside 0..4" in problems
    assert "img1.png is 10x10" in problems
    assert "img2.png" in problems and "looks like a colour (RGB) label map" in problems
    assert "img3.png: could not be read as an image" in problems
    assert "img4.jpg: label map saved as JPEG" in problems
    assert "Label maps without an image: img5" in problems
    assert "img6.png: could not be read as an image" in problems
    assert report.phases[0].pairs == 6                    # img5 has no partner
    assert f"{len(report.problems)} problem(s):" in report.text()


def test_palette_and_missing_instances(build, tmp_path):
    root = build.pix2pixhd(instances=False)
    write(root / "train_label" / "img0.png", colour_image(label_map(0)))
    palette = tmp_path / "palette.json"
    palette.write_text(json.dumps({"#000000": 0, "#ff0000": 1, "#00ff00": 2, "#0000ff": 3,
                                   "#ffff00": 4}))
    assert check_dataset(root, palette=palette).ok
    report = check_dataset(root, palette=palette, use_instance=True)
    assert any("--no-instance" in p for p in report.problems)


def test_aligned_and_broken_roots_never_raise(build, tmp_path):
    report = check_dataset(build.aligned())
    assert report.ok and report.layout == "aligned" and report.phases[0].image_sizes == {
        "32x16": 2}
    missing = check_dataset(tmp_path / "nowhere")
    assert not missing.ok and "dataset folder not found" in missing.text()
    (tmp_path / "junk").mkdir()
    assert "could not detect" in check_dataset(tmp_path / "junk").problems[0]


# --------------------------------------------------------------------------- single-image sources


def test_class_folders_report_and_semi_supervised_split(build):
    root = build.class_folders(counts=(3, 4, 2), phases=("train", "test"))
    data = (root / "train" / "c1" / "0.png").read_bytes()
    (root / "train" / "c1" / "0.png").write_bytes(data[: len(data) // 2])     # truncated
    report = check_dataset(root, labeled_per_class=2)
    assert report.layout == "class_folders" and report.num_classes == 3
    train, test = report.phases
    assert train.class_counts == {"c0": 3, "c1": 4, "c2": 2} and train.labeled == 6
    assert test.labeled is None and train.image_sizes == {"32x24": 8}
    assert len(report.problems) == 1 and "0.png: could not be read as an image" in (
        report.problems[0])
    text = report.text()
    assert "classes: 3\n" in text and "dont-care" not in text
    assert "        1 c1: 4" in text
    assert "semi-supervised: 6 labelled (2 per class), 3 unlabelled (class -1)" in text
    too_many = check_dataset(root, labeled_per_class=3)
    assert any("'c2' has 2" in p for p in too_many.problems)


def test_attribute_balance_and_celeba(build):
    report = check_dataset(build.attributes_csv())
    assert report.ok and report.layout == "attributes_csv"
    balance = report.phases[0].attribute_balance
    assert balance == pytest.approx({"smile": 2 / 3, "glasses": 2 / 3, "age": 1.0})
    assert "      smile: 0.667" in report.text()
    celeba = check_dataset(build.celeba(), attributes=["Male"])
    assert [p.phase for p in celeba.phases] == ["train", "val", "test"]
    assert [p.pairs for p in celeba.phases] == [3, 1, 2]
    assert celeba.phases[0].attribute_balance == pytest.approx({"Male": 2 / 3})
    assert "not an attribute" in check_dataset(build.celeba("c2"), attributes=["Bald"]).problems[0]


def test_idx_and_unpaired_reports(build, capsys):
    root = build.idx()
    assert main(["data", "check", str(root), "--labeled-per-class", "4"]) == 0
    text = capsys.readouterr().out
    assert "layout: idx" in text and "4x6 ×12" in text and "12 item(s)" in text
    assert "semi-supervised: 12 labelled (4 per class), 0 unlabelled" in text
    labels = root / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-3])
    report = check_dataset(root)
    assert [p.phase for p in report.phases] == ["train"]
    assert "could not be decompressed" in report.problems[0]

    unpaired = check_dataset(build.unpaired(b_count=3))
    assert unpaired.ok and unpaired.phases[0].real_images == 3
    assert unpaired.phases[0].image_sizes == {"32x24": 7}
    assert "B (real) images: 3" in unpaired.text()
