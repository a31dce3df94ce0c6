"""Domain classifiers: the network, the file round trip, training, the errors, and FID / KID /
IS computed with a classifier in place of Inception (``condsynth evaluate --classifier``)."""

from __future__ import annotations

import json
from types import MethodType

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.cli import main
from condsynth.errors import CheckpointError, CondsynthError, ConfigError, DataError
from condsynth.metrics.classifier import (
    DomainClassifier,
    DomainCNN,
    RunClassifier,
    classifier_accuracy,
    convert_images,
    load_classifier,
    load_feature_classifier,
    train_classifier,
)
from condsynth.metrics.evaluate import EvalOptions, evaluate_folders, list_images, read_uint8
from condsynth.metrics.fid import fid_from_features, kernel_inception_distance
from condsynth.metrics.inception_score import inception_score
from tests.toolbox.conftest import SIZE, write_class_folders


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """Three classes of noisy coloured squares, 16x16 RGB, 12 train and 6 test per class."""
    return write_class_folders(tmp_path_factory.mktemp("colours"), {"train": 12, "test": 6})


@pytest.fixture(scope="module")
def dcgan_run(colours, tmp_path_factory):
    """A class-conditional DCGAN of the three colour classes, trained for 2 steps."""
    run = tmp_path_factory.mktemp("dcgan") / "run"
    assert main(["train", "--method", "dcgan", "--data", str(colours), "--run", str(run),
                 "--max-steps", "2", "--size", str(SIZE), "--batch-size", "6", "--quiet",
                 "condition.kind=class", "model.ngf=8", "model.ndf=8", "model.z_dim=12",
                 "train.tensorboard=false", "train.sample_every=2"]) == 0
    return run


@pytest.fixture(scope="module")
def trained(colours, tmp_path_factory):
    out = tmp_path_factory.mktemp("classifier") / "colours.safetensors"
    train_classifier(colours, out, steps=40, batch_size=12, width=4, feature_dim=8,
                     lr=1e-2, device="cpu", progress=False)
    return out


def test_the_network_gives_features_and_logits_at_any_size():
    net = DomainCNN(1, 5, width=4, feature_dim=8).eval()
    for hw in ((28, 28), (40, 33), (8, 8)):
        features, logits = net(torch.zeros(2, 1, *hw))
        assert features.shape == (2, 8) and logits.shape == (2, 5)
        assert (features >= 0).all()                    # after the ReLU


def test_images_are_converted_to_the_classifiers_input():
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    grey = convert_images(rgb, channels=1, size=None)
    # pure red: luma 0.299 * 255 -> 0.299 * 1 + 0.587 * -1 + 0.114 * -1 in [-1, 1]
    assert grey.shape == (1, 1, 4, 4)
    assert torch.allclose(grey, torch.full_like(grey, 0.299 - 0.587 - 0.114))
    one = torch.linspace(-1, 1, 16).view(1, 1, 4, 4)
    assert torch.equal(convert_images(one, 3, None), one.expand(1, 3, 4, 4))
    assert convert_images(one, 1, 8).shape == (1, 1, 8, 8)
    assert torch.equal(convert_images(one, 1, 4), one)   # the right size is left alone
    with pytest.raises(DataError, match="C = 1 or 3"):
        convert_images(torch.zeros(1, 4, 4, 4), 1, None)


def test_training_writes_weights_and_a_config_that_load_back(trained, colours):
    info = json.loads(trained.with_suffix(".json").read_text())
    assert info["format"] == "condsynth-classifier"
    assert info["classes"] == ["class_0", "class_1", "class_2"]
    assert (info["size"], info["channels"]) == (SIZE, 3)       # the data's, RGB files
    assert info["architecture"] == {"name": "DomainCNN", "width": 4, "feature_dim": 8,
                                    "dropout": 0.3}
    assert info["normalisation"]["range"] == "minus1_1"
    assert info["accuracy"]["test_split"] == "test" and info["accuracy"]["test_images"] == 18
    # the squares' colours tell the classes apart: a few steps learn them
    assert info["accuracy"]["test"] >= 0.9 and info["accuracy"]["train"] >= 0.9

    clf = load_classifier(trained)
    assert clf.classes == info["classes"] and clf.size == SIZE and clf.channels == 3
    images = torch.stack([read_uint8(p) for p in list_images(colours / "test" / "class_1")])
    x = images.float() / 127.5 - 1
    with torch.no_grad():
        expected = clf.net(x)
    assert torch.allclose(clf.features(x), expected[0]) and clf.features(x).shape == (6, 8)
    assert torch.allclose(clf.logits(images), expected[1], atol=1e-5)    # uint8 in: the same
    assert clf.predict(x).shape == (6,)
    # other sizes and channel counts are converted
    assert clf.logits(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    # the .json beside it and a folder holding it name the same classifier
    for spec in (trained.with_suffix(".json"), trained.parent):
        again = load_classifier(spec)
        assert again.sha256 == clf.sha256
        assert torch.equal(again.features(x), clf.features(x))
    result = classifier_accuracy(clf, colours, progress=False)
    assert result["phase"] == "test" and result["images"] == 18
    assert result["accuracy"] == pytest.approx(info["accuracy"]["test"])


def test_bad_classifier_files_are_clear_errors(trained, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_classifier(tmp_path / "missing.safetensors")
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(trained.read_bytes())
    with pytest.raises(CheckpointError, match="lone.json is missing"):
        load_classifier(lone)
    lone.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_classifier(lone)
    lone.with_suffix(".json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="not a condsynth classifier"):
        load_classifier(lone)
    lone.with_suffix(".json").write_text(trained.with_suffix(".json").read_text())
    lone.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="could not be loaded"):
        load_classifier(lone)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no classifier"):
        load_classifier(tmp_path / "empty")


def test_training_refuses_bad_settings_and_unlabelled_data(colours, tmp_path):
    with pytest.raises(ConfigError, match=".safetensors"):
        train_classifier(colours, tmp_path / "clf.pt", steps=1, progress=False)
    with pytest.raises(ConfigError, match="--channels"):
        train_classifier(colours, tmp_path / "c.safetensors", channels=2, progress=False)
    plain = tmp_path / "plain"
    plain.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), i * 50, np.uint8)).save(plain / f"{i}.png")
    with pytest.raises(DataError, match="no class labels"):
        train_classifier(plain, tmp_path / "c.safetensors", steps=1, layout="image_folder",
                         progress=False)


def test_fid_kid_and_is_with_the_classifier_and_the_report_names_it(trained, colours,
                                                                     tmp_path, capsys):
    real, fake = colours / "test" / "class_0", colours / "test" / "class_2"
    out = tmp_path / "eval"
    code = main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out),
                 "--metrics", "fid,kid,is", "--classifier", str(trained), "--kid-subsets", "5",
                 "--is-splits", "2", "--device", "cpu", "--quiet", "--no-cache"])
    printed = capsys.readouterr().out
    assert code == 0
    clf = load_classifier(trained)
    results = json.loads((out / "eval.json").read_text())
    network = results["feature_network"]
    assert network["kind"] == "domain_classifier" and network["sha256"] == clf.sha256
    assert network["classes"] == 3 and network["test_accuracy"] == clf.test_accuracy
    assert trained.name in network["summary"] and clf.sha256[:12] in network["summary"]
    assert "inception" not in results
    assert network["summary"] in printed and "FID (classifier)" in printed
    page = (out / "eval.html").read_text()
    assert trained.name in page and "Inception Score (classifier)" in page
    # the numbers are the formulas on the classifier's own features and logits
    features, logits = [], []
    for folder in (real, fake):
        images = torch.stack([read_uint8(p) for p in list_images(folder)])
        f, g = clf.outputs(images)
        features.append(f.numpy())
        logits.append(g.numpy())
    metrics = results["metrics"]
    assert metrics["fid"] == pytest.approx(fid_from_features(*features), rel=1e-6)
    assert metrics["kid"]["mean"] == pytest.approx(
        kernel_inception_distance(*features, num_subsets=5, seed=0)[0], rel=1e-6)
    assert metrics["is"]["fake"]["mean"] == pytest.approx(inception_score(logits[1], 2)[0])
    assert metrics["is"]["real"]["mean"] == pytest.approx(inception_score(logits[0], 2)[0])


def test_classifier_features_are_cached_under_the_classifiers_key(trained, colours, tmp_path,
                                                                   monkeypatch):
    real, fake = colours / "test" / "class_0", colours / "test" / "class_1"
    options = EvalOptions(metrics=["fid", "is"], classifier=str(trained), device="cpu",
                          cache_dir=str(tmp_path / "cache"), progress=False)
    first = evaluate_folders(real, fake, tmp_path / "a", options)
    stores = sorted(p.name for p in (tmp_path / "cache" / "features").iterdir())
    assert len(stores) == 2 and all(n.endswith(load_classifier(trained).tag) for n in stores)

    def no_network(self, x):
        raise AssertionError("features should have come from the cache")

    monkeypatch.setattr(DomainClassifier, "_outputs", no_network)
    second = evaluate_folders(real, fake, tmp_path / "b", options)
    assert second["metrics"] == first["metrics"] and not second["errors"]


def test_a_runs_classifier_through_the_hook(dcgan_run):
    from condsynth.api import load

    with pytest.raises(CondsynthError, match="no classifier"):
        load_feature_classifier(dcgan_run)
    method = load(dcgan_run, device="cpu")
    seen = []

    def classify_logits(self, images):
        seen.append(tuple(images.shape))
        return images.mean(dim=(2, 3))                  # (B, 3): three "classes"

    method.classify_logits = MethodType(classify_logits, method)
    clf = RunClassifier(method, dcgan_run, "f" * 64)
    assert clf.classes == ["class_0", "class_1", "class_2"]
    grey = torch.zeros(2, 1, 28, 28)
    assert clf.logits(grey).shape == (2, 3) and seen[-1] == (2, 3, SIZE, SIZE)
    assert clf.describe()["kind"] == "run_classifier"
    with pytest.raises(CondsynthError, match="no features"):
        clf.features(grey)
    method.classifier_features = MethodType(lambda self, x: x.flatten(1)[:, :5], method)
    assert clf.features(grey).shape == (2, 5)


def test_evaluate_a_run_with_a_classifier_file(dcgan_run, colours, trained, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", str(dcgan_run), "--data", str(colours), "--out", str(out),
                 "--metrics", "is,fid", "--classifier", str(trained), "--is-splits", "1",
                 "--device", "cpu", "--quiet", "--no-cache"]) == 0
    results = json.loads((out / "eval.json").read_text())
    assert results["feature_network"]["kind"] == "domain_classifier"
    assert 1.0 <= results["metrics"]["is"]["fake"]["mean"] <= 3.0     # at most K classes
    assert np.isfinite(results["metrics"]["fid"])


def test_classifier_commands(colours, tmp_path, capsys):
    out = tmp_path / "c.safetensors"
    assert main(["classifier", "train", "--data", str(colours), "--out", str(out), "--steps",
                 "3", "--width", "4", "--batch-size", "6", "--channels", "1", "--size", "12",
                 "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "3-class classifier at 12x12x1" in printed and "test accuracy" in printed
    assert main(["classifier", "test", str(out), "--data", str(colours), "--phase", "train",
                 "--device", "cpu", "--quiet"]) == 0
    assert "on 36 images of the train split" in capsys.readouterr().out
    assert main(["classifier", "train", "--data", str(colours), "--out",
                 str(tmp_path / "c.bin"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Fix:" in err and "Traceback" not in err
    assert main(["classifier", "test", str(tmp_path / "none.safetensors"), "--data",
                 str(colours)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--real", str(colours / "test" / "class_0"), "--fake",
                 str(colours / "test" / "class_1"), "--out", str(tmp_path / "e"),
                 "--metrics", "is", "--classifier", str(tmp_path / "none.safetensors"),
                 "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
