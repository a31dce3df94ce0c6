"""Segmentation scores against hand counts; the pluggable segmenters; condsynth's own one."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import nn

from condsynth.errors import CheckpointError, CondsynthError, DataError
from condsynth.metrics.segmentation import (
    SEGMENTERS,
    Segmenter,
    SegmenterUNet,
    confusion_matrix,
    load_own_segmenter,
    load_segmenter,
    register_segmenter,
    segmentation_scores,
    train_segmenter,
)


def test_confusion_matrix_and_scores_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    matrix = confusion_matrix(pred, target, num_classes=4, ignore_index=255)
    expected = np.zeros((4, 4), np.int64)
    expected[0, 0], expected[0, 1] = 1, 1            # class 0: one right, one taken for 1
    expected[1, 1] = 3
    expected[2, 2], expected[2, 0] = 1, 1
    np.testing.assert_array_equal(matrix, expected)
    scores = segmentation_scores(matrix)
    # IoU = TP / (TP + FP + FN): class 0: 1 / (1 + 1 + 1), class 1: 3 / (3 + 1), class 2: 1 / 2
    assert scores.per_class_iou == pytest.approx([1 / 3, 3 / 4, 1 / 2, None])
    assert scores.miou == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)   # class 3 never occurs
    assert scores.pixel_accuracy == pytest.approx(5 / 7) and scores.pixels == 7


def test_predicted_classes_beyond_the_dataset_are_an_error():
    with pytest.raises(DataError, match="predicted class 5"):
        confusion_matrix(torch.tensor([5]), torch.tensor([1]), num_classes=3)
    with pytest.raises(CondsynthError, match="no labelled pixels"):
        segmentation_scores(confusion_matrix(torch.tensor([1]), torch.tensor([255]), 3))


def test_segmenter_wrapper_resizes_and_normalizes():
    seen = {}

    def net(x):
        seen["x"] = x
        scores = torch.zeros(x.shape[0], 3, 4, 4)
        scores[:, 2] = 1.0                                 # class 2 everywhere, at 4x4
        return {"out": scores}

    seg = Segmenter(net, input_range="0_1")
    images = torch.full((2, 3, 16, 12), -1.0)
    out = seg(images)
    assert out.shape == (2, 16, 12) and out.dtype == torch.int64 and bool((out == 2).all())
    assert float(seen["x"].max()) == 0.0                   # [-1, 1] -> [0, 1]
    ids = Segmenter(lambda x: torch.ones(x.shape[0], 8, 8, dtype=torch.long))(images)
    assert ids.shape == (2, 16, 12) and bool((ids == 1).all())
    imagenet = Segmenter(lambda x: seen.update(x=x) or torch.zeros(1, 2, 16, 12), "imagenet")
    imagenet(torch.ones(1, 3, 16, 12))
    assert float(seen["x"][0, 0, 0, 0]) == pytest.approx((1 - 0.485) / 0.229)


class Constant(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 3, x.shape[2], x.shape[3])
        out[:, 1] = 1.0
        return out


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_file_registered_model_and_bad_specs(tmp_path):
    path = tmp_path / "seg.pt"
    torch.jit.script(Constant()).save(str(path))
    seg = load_segmenter(path)
    assert bool((seg(torch.zeros(1, 3, 8, 8)) == 1).all()) and seg.name == "seg.pt"
    exported = tmp_path / "seg.pt2"
    torch.export.save(torch.export.export(Constant(), (torch.zeros(1, 3, 8, 8),)), exported)
    assert bool((load_segmenter(exported)(torch.zeros(1, 3, 8, 8)) == 1).all())
    torch.save({"w": torch.zeros(1)}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="not a TorchScript file"):
        load_segmenter(tmp_path / "state.pt")
    register_segmenter("constant-test", num_classes=3)(lambda weights, device: Constant())
    try:
        seg = load_segmenter("constant-test:unused.pth")
        assert seg.num_classes == 3 and bool((seg(torch.zeros(1, 3, 4, 4)) == 1).all())
    finally:
        SEGMENTERS.pop("constant-test")
    with pytest.raises(CondsynthError, match="condsynth segmenter train"):
        load_segmenter("no-such-segmenter")


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is not None,
                    reason="onnxruntime is installed")
def test_onnx_without_onnxruntime_says_how_to_fix(tmp_path):
    (tmp_path / "seg.onnx").write_bytes(b"not really onnx")
    with pytest.raises(CondsynthError, match="pip install onnxruntime"):
        load_segmenter(tmp_path / "seg.onnx")


def test_unet_takes_any_size():
    net = SegmenterUNet(num_classes=5, base_channels=4, depth=3).eval()
    assert net(torch.zeros(1, 3, 30, 22)).shape == (1, 5, 30, 22)


def test_train_segmenter_writes_a_loadable_folder(scenes, tmp_path):
    info = train_segmenter(scenes, tmp_path / "seg", steps=3, size=32, batch_size=4,
                           base_channels=4, depth=2, progress=False)
    assert info["num_classes"] == 11 and info["eval"]["phase"] == "test"
    assert 0.0 <= info["eval"]["miou"] <= 1.0
    assert json.loads((tmp_path / "seg" / "segmenter.json").read_text()) == info
    seg = load_own_segmenter(tmp_path / "seg")
    assert seg.num_classes == 11 and seg.info["class_names"][0] == "sky"
    assert seg(torch.zeros(2, 3, 32, 32)).shape == (2, 32, 32)
    with pytest.raises(CheckpointError, match="segmenter.json is missing"):
        load_segmenter(tmp_path)
