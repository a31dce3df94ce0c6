"""``check_dataset``: what a dataset holds, and every problem listed without raising."""

from __future__ import annotations

import json

import numpy as np

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
