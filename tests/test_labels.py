"""Label encoding: one-hot, dont-care channel, instance boundaries, clear range errors."""

from __future__ import annotations

import pytest
import torch

from condsynth.conditions import encode_label_map
from condsynth.config import ConditionConfig
from condsynth.data.labels import instance_edges
from condsynth.errors import DataError


def test_one_hot_and_dontcare_channel():
    label = torch.tensor([[[0, 1], [255, 2]]])
    spec = ConditionConfig(num_classes=3, contain_dontcare_label=True)
    x = encode_label_map(label, None, spec)
    assert x.shape == (1, 4, 2, 2)
    assert x[0, :, 1, 0].tolist() == [0, 0, 0, 1]            # dont-care -> its own channel
    assert x[0, :, 0, 1].tolist() == [0, 1, 0, 0]
    assert torch.all(x.sum(1) == 1)


def test_dontcare_without_its_channel_is_all_zero():
    label = torch.tensor([[[0, 255]]])
    x = encode_label_map(label, None, ConditionConfig(num_classes=2))
    assert x[0, :, 0, 1].tolist() == [0, 0]
    assert x[0, :, 0, 0].tolist() == [1, 0]


def test_instance_edges_mark_both_sides_of_every_boundary():
    inst = torch.tensor([[[1, 1, 2, 2],
                          [1, 1, 2, 2],
                          [3, 3, 3, 3]]])
    edges = instance_edges(inst)[0, 0]
    expected = torch.tensor([[0, 1, 1, 0],
                             [1, 1, 1, 1],
                             [1, 1, 1, 1]], dtype=torch.float)
    assert torch.equal(edges, expected)


def test_edges_separate_touching_instances_of_one_class():
    label = torch.full((1, 4, 4), 2)
    inst = torch.full((1, 4, 4), 2000)
    inst[:, :, 2:] = 2001
    x = encode_label_map(label, inst, ConditionConfig(num_classes=3, use_instance=True))
    assert x.shape == (1, 4, 4, 4)
    assert x[0, 3, :, 1].sum() == 4 and x[0, 3, :, 2].sum() == 4 and x[0, 3, :, 0].sum() == 0


def test_out_of_range_label_names_value_and_fix():
    label = torch.tensor([[[0, 7]]])
    with pytest.raises(DataError, match=r"scene\.png: label value\(s\) 7 outside 0\.\.4.*"
                                        r"num_classes to at least 8"):
        encode_label_map(label, None, ConditionConfig(num_classes=5), source="scene.png")


def test_missing_instance_map_is_a_clear_error():
    with pytest.raises(DataError, match="uses instance maps"):
        encode_label_map(torch.zeros(1, 2, 2, dtype=torch.long), None,
                         ConditionConfig(num_classes=2, use_instance=True))
