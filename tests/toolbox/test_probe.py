"""condsynth probe: D features pooled to 4x4, linear classifiers, the three feature sets."""

from __future__ import annotations

import json

import pytest
import torch

from condsynth.api import load
from condsynth.cli import main
from condsynth.probe import accuracy, conv_features, fit_linear, labelled_subset, standardize


@pytest.mark.parametrize("kind", ["logistic", "svm"])
def test_linear_classifiers_separate_separable_classes(kind):
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 5, generator=g) * 4
    y = torch.arange(90) % 3
    x = centres[y] + torch.randn(90, 5, generator=g) * 0.3
    xs, = standardize(x)
    w, b = fit_linear(xs, y, 3, kind, l2=1e-3)
    assert accuracy(xs, y, w, b) == 1.0
    shuffled = y[torch.randperm(90, generator=g)]
    w, b = fit_linear(xs[:45], shuffled[:45], 3, kind, l2=1e-3)
    assert accuracy(xs[45:], shuffled[45:], w, b) < 0.7          # no signal, no accuracy


def test_labelled_subset_is_stratified_and_seeded():
    labels = torch.arange(30) % 3
    picks = labelled_subset(labels, 4, 3, seed=1)
    assert torch.bincount(labels[picks]).tolist() == [4, 4, 4]
    assert torch.equal(picks, labelled_subset(labels, 4, 3, seed=1))
    assert not torch.equal(picks, labelled_subset(labels, 4, 3, seed=2))


def test_conv_features_pool_every_convolution_to_4x4(dcgan_run):
    method = load(dcgan_run, device="cpu")
    features = conv_features(method, torch.zeros(2, 3, 16, 16))
    convs = [m for m in method.discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    # 16x16 → 8x8 (8 maps) → 4x4 (16 maps) → the 1x1 logit: pooled to 4x4, 4x4 and 1x1.
    assert len(convs) == 3
    assert features.shape == (2, 8 * 16 + 16 * 16 + 1)


@pytest.mark.slow
def test_probe_reports_three_feature_sets(dcgan_run, class_data, tmp_path, capsys):
    assert main(["probe", str(dcgan_run), "--data", str(class_data), "--labels-per-class",
                 "4", "--out", str(tmp_path), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "trained D" in printed and "untrained D" in printed and "raw pixels" in printed
    results = json.loads((tmp_path / "probe.json").read_text())
    assert results["test_images"] == 18 and results["labels_per_class"] == 4
    assert results["features"]["raw pixels"] == 3 * 16 * 16
    for name, acc in results["accuracy"].items():
        assert 0.0 <= acc["mean"] <= 1.0, name
    # The classes differ by colour: raw pixels separate them.
    assert results["accuracy"]["raw pixels"]["mean"] > 0.8


def test_probe_needs_enough_labels(dcgan_run, class_data, capsys):
    assert main(["probe", str(dcgan_run), "--data", str(class_data), "--labels-per-class",
                 "50"]) == 2
    assert "fewer than --labels-per-class 50" in capsys.readouterr().err
