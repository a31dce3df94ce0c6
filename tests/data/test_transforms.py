"""Paired transforms: sizes per preprocess mode, alignment of label/instance/image, randomness."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from condsynth.config import DataConfig
from condsynth.data.transforms import (
    apply_image,
    apply_label,
    draw_params,
    round_to_multiple,
    transform_pair,
)
from condsynth.errors import DataError

from .builders import COLOURS, colour_image, instance_map, label_map


def _data(**kw) -> DataConfig:
    return dataclasses.replace(DataConfig(load_size=40, crop_size=32, aspect_ratio=2.0), **kw)


@pytest.mark.parametrize(("preprocess", "expected_hw"), [
    ("resize_and_crop", (16, 32)),      # resize to 40x20, crop 32x16
    ("scale_width", (30, 40)),          # 48x36 → width 40
    ("scale_width_and_crop", (16, 32)),
    ("crop", (16, 32)),
    ("fixed", (16, 32)),                # straight to crop_size x crop_size / aspect
    ("none", (36, 48)),
])
def test_output_size_per_mode(preprocess, expected_hw):
    params = draw_params((36, 48), _data(preprocess=preprocess), True, np.random.default_rng(0))
    out = apply_image(np.zeros((36, 48, 3), np.uint8), params)
    assert out.shape[:2] == expected_hw == params.output_hw


def test_size_multiple_rounds_like_make_power_2():
    assert round_to_multiple((36, 50), 16) == (32, 48)
    assert round_to_multiple((5, 70), 16) == (16, 64)
    assert round_to_multiple((37, 51), 1) == (37, 51)
    params = draw_params((36, 50), _data(preprocess="none"), False, np.random.default_rng(0),
                         size_multiple=16)
    assert apply_label(np.zeros((36, 50), np.int64), params).shape == (32, 48)


def test_eval_is_centre_crop_without_flip():
    data = _data(preprocess="crop", flip=True)
    for seed in range(5):
        params = draw_params((24, 40), data, False, np.random.default_rng(seed))
        assert params.crop == (4, 4, 16, 32) and not params.flip


def test_train_crops_and_flips_vary_with_the_generator():
    data = _data(preprocess="crop", flip=True)
    drawn = {draw_params((40, 64), data, True, np.random.default_rng(s)) for s in range(20)}
    assert len({p.crop for p in drawn}) > 5
    assert {p.flip for p in drawn} == {True, False}
    no_flip = _data(preprocess="crop", flip=False)
    assert not any(draw_params((40, 64), no_flip, True, np.random.default_rng(s)).flip
                   for s in range(20))


def test_crop_larger_than_image_is_a_clear_error():
    with pytest.raises(DataError, match=r"small\.png: cannot crop 32x16 .* from 20x10.*"
                                        r"lower data.crop_size"):
        draw_params((10, 20), _data(preprocess="crop"), True, np.random.default_rng(0),
                    source="small.png")


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "scale_width_and_crop", "fixed",
                                        "crop", "scale_width"])
def test_label_instance_and_image_stay_aligned(preprocess):
    label = label_map(3, (48, 64), block=8)
    image = colour_image(label)
    instance = instance_map(label)
    data = _data(load_size=56, crop_size=40, aspect_ratio=1.25, preprocess=preprocess, flip=True)
    for seed in range(4):
        out_image, out_label, out_instance = transform_pair(
            image, label, instance, data=data, train=True, rng=np.random.default_rng(seed),
            size_multiple=8)
        # Both go through NEAREST with the same parameters: ids agree exactly.
        np.testing.assert_array_equal(out_instance // 1000, out_label)
        # The image went through BICUBIC: its colour matches the label's except near borders.
        error = np.abs(out_image.astype(int) - COLOURS[out_label].astype(int)).max(axis=2)
        assert (error < 60).mean() > 0.8, f"seed {seed}: image and label drifted apart"


def test_flip_mirrors_every_array_the_same_way():
    label = np.arange(12).reshape(3, 4)
    params = draw_params((3, 4), _data(preprocess="none", flip=True), True,
                         np.random.default_rng(1))
    assert params.flip  # seed 1 flips; if numpy's stream changes, pick another seed
    np.testing.assert_array_equal(apply_label(label, params), label[:, ::-1])
    image = np.repeat(label.astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(apply_image(image, params)[..., 0], label[:, ::-1])


def test_transform_refuses_arrays_of_another_size():
    params = draw_params((8, 8), _data(preprocess="none"), False, np.random.default_rng(0))
    with pytest.raises(DataError, match=r"same size"):
        apply_label(np.zeros((8, 9), np.int64), params)


def test_nearest_keeps_large_int64_ids():
    ids = np.array([[2**40, 5], [7, 32768]], dtype=np.int64)
    params = draw_params((2, 2), _data(preprocess="fixed", crop_size=4, aspect_ratio=1.0), False,
                         np.random.default_rng(0))
    out = apply_label(ids, params)
    assert out.dtype == np.int64 and set(np.unique(out)) == set(ids.ravel())
