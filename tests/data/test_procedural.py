"""Procedural scenes: classes, layout statistics, instance encoding, determinism, files."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
from PIL import Image

from condsynth.data.procedural import (
    CLASS_COLOURS,
    CLASS_NAMES,
    THING_CLASSES,
    _scene_seed,
    colourize,
    make_scene,
    write_dataset,
)
from condsynth.errors import ConfigError

SKY, CLOUD, MOUNTAIN, WATER, GRASS, ROAD, BUILDING, TREE, CAR, PERSON, SAND = range(11)
GROUND_STUFF = [WATER, GRASS, ROAD, SAND]


@cache
def scenes(size: int = 64, count: int = 20) -> tuple[tuple[np.ndarray, ...], ...]:
    # Shared by several tests: 20 small scenes take well under a second.
    return tuple(make_scene(size, seed) for seed in range(count))


def test_class_tables_agree() -> None:
    assert CLASS_NAMES[:10] == ["sky", "cloud", "mountain", "water", "grass", "road",
                                "building", "tree", "car", "person"]
    assert 10 <= len(CLASS_NAMES) <= 12
    assert len(CLASS_COLOURS) == len(CLASS_NAMES) == len(set(CLASS_COLOURS))
    assert THING_CLASSES == {BUILDING, TREE, CAR, PERSON}


@pytest.mark.parametrize("size, shape", [(48, (48, 48)), ((40, 72), (40, 72))])
def test_shapes_and_dtypes(size, shape) -> None:
    label, instance, image = make_scene(size, 3)
    assert label.shape == instance.shape == shape and image.shape == (*shape, 3)
    assert label.dtype == np.uint8 and instance.dtype == np.int32 and image.dtype == np.uint8
    assert label.max() < len(CLASS_NAMES)


def test_every_class_appears() -> None:
    present = set()
    for label, _, _ in scenes():
        present |= set(np.unique(label).tolist())
    assert present == set(range(len(CLASS_NAMES)))
    assert len(set(np.unique(scenes()[0][0]).tolist()) | set(np.unique(scenes()[1][0]))) >= 5


def test_sky_above_ground_below() -> None:
    labels = np.stack([label for label, _, _ in scenes()])          # (N, H, W)
    top, bottom = labels[:, :6], labels[:, -6:]
    assert np.mean(np.isin(top, [SKY, CLOUD])) > 0.6
    assert np.mean(top == SKY) > 0.5
    assert np.mean(np.isin(bottom, GROUND_STUFF)) > 0.8
    assert not np.any(np.isin(bottom, [SKY, CLOUD, MOUNTAIN]))


def test_things_stand_on_the_ground_with_perspective() -> None:
    # Farther things are higher in the image and smaller: compare each tree's foot row
    # with its pixel height over many trees.
    feet, heights = [], []
    for label, instance, _ in scenes(128, 12):
        for inst in np.unique(instance[label == TREE]):
            rows = np.nonzero((instance == inst).any(axis=1))[0]
            if rows[-1] < label.shape[0] - 1 and rows[0] > 0:             # not cut by a border
                feet.append(rows[-1])
                heights.append(rows[-1] - rows[0] + 1)
    assert len(feet) >= 10
    assert np.corrcoef(feet, heights)[0, 1] > 0.5


def test_instance_encoding() -> None:
    for label, instance, _ in scenes():
        thing = np.isin(label, list(THING_CLASSES))
        np.testing.assert_array_equal(instance[~thing], label[~thing])
        np.testing.assert_array_equal(instance[thing] // 1000, label[thing])


def test_same_class_instances_touch() -> None:
    touching = 0
    for label, instance, _ in scenes():
        thing = np.isin(label, list(THING_CLASSES))
        same_class = label[:, 1:] == label[:, :-1]
        right = thing[:, 1:] & same_class & (instance[:, 1:] != instance[:, :-1])
        down = thing[1:] & (label[1:] == label[:-1]) & (instance[1:] != instance[:-1])
        touching += bool(right.any() or down.any())
    assert touching >= 10


def test_deterministic() -> None:
    a, b, c = make_scene(64, 7), make_scene(64, 7), make_scene(64, 8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[2], c[2])


def test_appearance_seed_changes_only_the_image() -> None:
    base = make_scene(64, 5)
    other = make_scene(64, 5, appearance_seed=99)
    np.testing.assert_array_equal(base[0], other[0])
    np.testing.assert_array_equal(base[1], other[1])
    assert np.abs(base[2].astype(int) - other[2]).mean() > 3


def test_image_colour_follows_label() -> None:
    sums = np.zeros((len(CLASS_NAMES), 3))
    counts = np.zeros(len(CLASS_NAMES))
    for label, _, image in scenes():
        for c in range(len(CLASS_NAMES)):
            mask = label == c
            sums[c] += image[mask].sum(0)
            counts[c] += mask.sum()
    mean = sums / counts[:, None]                                       # (classes, RGB)
    r, g, b = mean.T
    assert b[SKY] > r[SKY] + 30                                         # sky is blue
    assert g[GRASS] > r[GRASS] + 20 and g[GRASS] > b[GRASS] + 20        # grass is green
    assert b[WATER] > r[WATER]                                          # water is bluish
    assert r[SAND] > b[SAND] + 30                                       # sand is warm
    assert np.ptp(mean[ROAD]) < 20                                      # road is grey
    assert mean[CLOUD].mean() > mean[SKY].mean()                        # clouds are bright
    # Classes with one colour per scene (not per instance) are told apart by their mean colour.
    shared = mean[[SKY, CLOUD, MOUNTAIN, WATER, GRASS, ROAD, TREE, SAND]]
    distance = np.linalg.norm(shared[:, None] - shared[None, :], axis=-1)
    assert distance[~np.eye(len(shared), dtype=bool)].min() > 15


def test_image_is_textured_not_flat() -> None:
    label, _, image = scenes()[0]
    grass = image[label == GRASS].astype(float)
    assert grass.std(axis=0).mean() > 3


def test_colourize() -> None:
    label = np.array([[0, 4], [255, 99]], np.uint8)
    rgb = colourize(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == CLASS_COLOURS[0] and tuple(rgb[0, 1]) == CLASS_COLOURS[4]
    assert not rgb[1].any()                                             # dont-care/unknown: black


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(ConfigError, match="size"):
        make_scene((32,), 0)
    with pytest.raises(ConfigError, match="non-negative"):
        make_scene(32, -1)


def test_write_dataset(tmp_path) -> None:
    summary = write_dataset(tmp_path / "ds", count=3, size=(48, 64), seed=1, progress=False)
    root = tmp_path / "ds"
    assert summary["train_count"] == 3 and summary["test_count"] == 1
    assert summary["size"] == [48, 64] and summary["seed"] == 1
    for split, n in (("train", 3), ("test", 1)):
        for kind in ("label", "inst", "img"):
            files = sorted(p.name for p in (root / f"{split}_{kind}").iterdir())
            assert files == [f"{i:06d}.png" for i in range(n)]
    classes = json.loads((root / "classes.json").read_text())
    assert classes["names"] == CLASS_NAMES
    assert [tuple(c) for c in classes["colours"]] == CLASS_COLOURS
    assert classes["things"] == sorted(THING_CLASSES)

    label_png = Image.open(root / "train_label" / "000000.png")
    inst_png = Image.open(root / "train_inst" / "000000.png")
    img_png = Image.open(root / "train_img" / "000000.png")
    assert label_png.mode == "L" and img_png.mode == "RGB" and inst_png.mode.startswith("I")
    label, instance, image = make_scene((48, 64), _scene_seed(1, 0, 0))   # train scene 0
    np.testing.assert_array_equal(np.array(label_png), label)
    np.testing.assert_array_equal(np.array(inst_png).astype(np.int64), instance)  # 16-bit exact
    np.testing.assert_array_equal(np.array(img_png), image)
    assert instance.max() >= 1000                       # ids that only a 16-bit PNG can hold

    # Test scenes come from other seeds than training scenes.
    test_label = np.array(Image.open(root / "test_label" / "000000.png"))
    assert not np.array_equal(test_label, label)

    # Same arguments, same bytes.
    write_dataset(tmp_path / "again", count=3, size=(48, 64), seed=1, progress=False)
    for path in sorted(root.rglob("*.*")):
        assert path.read_bytes() == (tmp_path / "again" / path.relative_to(root)).read_bytes()
