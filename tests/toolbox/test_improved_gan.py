"""The semi-supervised K+1 GAN: the official layer plans, labelled and unlabelled batches, the
averaged test-time D, the supervised-only baseline, `condsynth classify` and `condsynth
evaluate --metrics accuracy`; DCGAN with every technique on resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from condsynth import checkpoint
from condsynth.cli import main
from condsynth.config import DataConfig
from condsynth.data.sources import open_dataset
from condsynth.errors import ConfigError
from condsynth.layers.improved import GaussianNoise, MinibatchDiscrimination, WeightNorm
from condsynth.metrics.accuracy import logistic_predict, logistic_regression
from condsynth.presets import load_preset
from condsynth.registry import build_method
from condsynth.train import make_optimizers, prepare_config, resolve_optimizers, train, train_step
from tests.tiny import tiny_batch, tiny_config
from tests.toolbox.conftest import SIZE

CPU = torch.device("cpu")


def test_the_official_mnist_networks():
    method = build_method(load_preset("improved_gan_mnist"))
    d = method.discriminator
    dense = [m for m in d.modules() if isinstance(m, WeightNorm)]
    assert [tuple(m.direction.shape) for m in dense] == [
        (1000, 784), (500, 1000), (250, 500), (250, 250), (250, 250), (10, 250)]
    assert [m.sigma for m in d.modules() if isinstance(m, GaussianNoise)] == [0.3] + [0.5] * 5
    assert not any(isinstance(m.scale, nn.Parameter) for m in dense[:-1])   # fixed scales
    assert isinstance(dense[-1].scale, nn.Parameter)
    g = [m for m in method.generator.modules() if isinstance(m, nn.Linear | WeightNorm)]
    assert [m.in_features if isinstance(m, nn.Linear) else m.direction.shape[1]
            for m in g] == [100, 500, 500]
    assert sum(isinstance(m, nn.Softplus) for m in method.generator.modules()) == 2
    image = method.eval().generate(batch_size=3)
    assert image.shape == (3, 1, 28, 28) and image.min() >= -1 and image.max() <= 1
    logits, features = d.eval()(image)
    assert logits.shape == (3, 10) and features.shape == (3, 250)
    assert method.config.train.lr_d == 0.003 and method.config.train.batch_size == 100


@pytest.mark.parametrize(("preset", "widths"), [("improved_gan_cifar", (96, 192)),
                                                ("improved_gan_svhn", (64, 128))])
def test_the_official_conv_networks(preset, widths):
    method = build_method(load_preset(preset)).eval()
    convs = [m for m in method.discriminator.modules()
             if isinstance(m, WeightNorm) and m.kind == "conv"]
    w1, w2 = widths
    assert [m.direction.shape[0] for m in convs] == [w1] * 3 + [w2] * 6
    assert [m.stride for m in convs] == [1, 1, 2, 1, 1, 2, 1, 1, 1]
    assert sum(isinstance(m, nn.Dropout) for m in method.discriminator.modules()) == 3
    image = method.generate(batch_size=2)
    assert image.shape == (2, 3, 32, 32)
    logits, features = method.discriminator(image)
    assert logits.shape == (2, 10) and features.shape == (2, w2)


def test_the_minibatch_discrimination_variant():
    config = load_preset("improved_gan_cifar_minibatch")
    method = build_method(config)
    assert any(isinstance(m, MinibatchDiscrimination) for m in method.discriminator.modules())
    phases = method.phases()
    assert [(p.name, p.repeats) for p in phases] == [("discriminator", 1), ("generator", 3)]
    assert config.model.generator_loss == "non_saturating"
    assert [m.sigma for m in method.discriminator.modules()
            if isinstance(m, GaussianNoise)] == [0.2]


def test_labelled_partners_visit_every_labelled_item_equally(tmp_path):
    from tests.toolbox.conftest import write_class_folders

    root = write_class_folders(tmp_path / "c", {"train": 8})
    data = DataConfig(root=str(root), load_size=SIZE, crop_size=SIZE, preprocess="fixed",
                      flip=False, labeled_per_class=2, labeled_batch=True)
    dataset = open_dataset(data, "train", train=True, seed=3)
    partners = [dataset.labeled_partner(i) for i in range(len(dataset))]   # 24 items, 6 labels
    assert sorted(set(partners)) == sorted(dataset.labeled_indices.tolist())
    assert np.bincount(partners)[dataset.labeled_indices].tolist() == [4] * 6
    item = dataset[5]
    assert item["labeled_class"] == dataset.classes[partners[5]] >= 0
    assert item["labeled_image"].shape == item["image"].shape
    dataset.set_epoch(1)
    assert [dataset.labeled_partner(i) for i in range(len(dataset))] != partners
    assert "labeled_image" not in open_dataset(data, "train", train=False, seed=3)[0]


def test_d_steps_and_g_steps():
    config = tiny_config("improved_gan")
    torch.manual_seed(0)
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    first = torch.cat([p.detach().reshape(-1) for p in method.discriminator.parameters()])
    losses = train_step(method, tiny_batch(config), optimizers, 0, "fp32", CPU)
    assert {"d_labeled", "d_unlabeled", "g_feature_matching", "d_history",
            "g_history"} == set(losses)
    assert int(method.initialized) == 1
    # The data-dependent initialization ran before the average took in the parameters.
    assert not torch.allclose(method.d_average, 0.1 * first)
    # Without it: the average starts at zero and takes in the parameters before the step.
    config = tiny_config("improved_gan", extra=["model.data_init=false"])
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    first = torch.cat([p.detach().reshape(-1) for p in method.discriminator.parameters()])
    train_step(method, tiny_batch(config), optimizers, 0, "fp32", CPU)
    assert torch.allclose(method.d_average, 0.1 * first)
    assert not torch.allclose(method.d_average, 0.1 * torch.cat(
        [p.detach().reshape(-1) for p in method.discriminator.parameters()]))


def test_supervised_only_trains_d_on_labels_alone():
    config = tiny_config("improved_gan", extra=["model.supervised_only=true"])
    method = build_method(config)
    assert [p.name for p in method.phases()] == ["discriminator"]
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    losses = train_step(method, tiny_batch(config), optimizers, 0, "fp32", CPU)
    assert "d_unlabeled" not in losses and "d_labeled" in losses


def test_clear_errors_for_missing_or_wrong_labels():
    config = tiny_config("improved_gan")
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    batch = tiny_batch(config)
    with pytest.raises(ConfigError, match="labeled_batch"):
        train_step(method, {"image": batch["image"]}, optimizers, 0, "fp32", CPU)
    batch["labeled_class"] = torch.tensor([0, 7])
    with pytest.raises(ConfigError, match="num_classes"):
        train_step(method, batch, optimizers, 0, "fp32", CPU)
    with pytest.raises(ConfigError, match="32x32"):
        build_method(tiny_config("improved_gan", extra=["model.architecture=conv",
                                                        "data.crop_size=16"]))


def test_logistic_regression_reaches_its_optimum():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    weights = logistic_regression(x, y, 3).requires_grad_(True)
    xb = torch.cat([x.double(), torch.ones(60, 1, dtype=torch.float64)], 1)
    objective = 0.5 * weights[:-1].square().sum() + torch.nn.functional.cross_entropy(
        xb @ weights, y, reduction="sum")
    objective.backward()
    assert float(weights.grad.abs().max()) < 1e-4               # the gradient vanishes
    assert float((logistic_predict(weights.detach(), x) == y).double().mean()) > 0.8


@pytest.fixture(scope="module")
def kplus1_run(tmp_path_factory, class_data) -> Path:
    run = tmp_path_factory.mktemp("kplus1") / "run"
    assert main(["train", "--method", "improved_gan", "--data", str(class_data), "--run",
                 str(run), "--max-steps", "3", "--size", str(SIZE), "--batch-size", "6",
                 "--quiet", "data.channels=3", "data.labeled_per_class=2",
                 "model.num_classes=3", "model.d_widths=[16,8]", "model.g_widths=[16]",
                 "model.ema_decay=0.5", "train.tensorboard=false"]) == 0
    return run


def test_classify_prints_classes_and_probabilities(kplus1_run, class_data, capsys):
    images = sorted(str(p) for p in (class_data / "test").rglob("*.png"))[:2]
    assert main(["classify", str(kplus1_run), *images, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in rows] == images
    for r in rows:
        assert set(r["probabilities"]) == {"class_0", "class_1", "class_2"}
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert r["name"] == max(r["probabilities"], key=r["probabilities"].get)
    assert main(["classify", str(kplus1_run), images[0]]) == 0
    assert images[0] in capsys.readouterr().out
    assert main(["classify", str(kplus1_run), "missing.png"]) == 2


def test_evaluate_accuracy_of_the_averaged_d(kplus1_run, class_data, capsys):
    assert main(["evaluate", str(kplus1_run), "--data", str(class_data), "--metrics",
                 "accuracy", "--quiet"]) == 0
    assert "accuracy (%)" in capsys.readouterr().out
    results = json.loads((kplus1_run / "eval" / "eval.json").read_text())
    accuracy = results["metrics"]["accuracy"]
    assert accuracy["count"] == 18 and accuracy["phase"] == "test"
    assert accuracy["correct"] == round(accuracy["accuracy"] * 18)
    assert accuracy["classifier"].startswith("averaged discriminator")
    # The averaged D, by hand.
    method = build_method(checkpoint.read_config(kplus1_run))
    checkpoint.load_method(kplus1_run, method)
    dataset = open_dataset(DataConfig(root=str(class_data), channels=3, load_size=SIZE,
                                      crop_size=SIZE, preprocess="fixed", flip=False),
                           "test", train=False, seed=0)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    labels = torch.tensor([int(dataset[i]["class"]) for i in range(len(dataset))])
    predicted = method.classifier()(images)[0].argmax(1)
    assert int((predicted == labels).sum()) == accuracy["correct"]
    assert torch.allclose(method.classify_logits(images), method.classifier()(images)[0])
    assert method.classifier_features(images).shape == (18, 8)
    assert "accuracy (%)" in (kplus1_run / "eval" / "eval.html").read_text()


def test_a_kplus1_run_is_a_feature_network_for_the_scores(kplus1_run, class_data, tmp_path):
    assert main(["evaluate", str(kplus1_run), "--data", str(class_data), "--metrics",
                 "is,kid", "--classifier", str(kplus1_run), "--out", str(tmp_path), "--quiet",
                 "--kid-subset-size", "6", "--kid-subsets", "2", "--is-splits", "2"]) == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["metrics"]["is"]["fake"]["mean"] >= 1
    assert results["feature_network"]["kind"] == "run_classifier"


def test_accuracy_needs_a_classifying_run(dcgan_run, class_data, capsys):
    assert main(["evaluate", str(dcgan_run), "--data", str(class_data), "--metrics",
                 "accuracy", "--quiet"]) == 2
    assert "does not" in capsys.readouterr().err


@pytest.mark.slow
def test_dcgan_with_every_technique_resumes_exactly(tmp_path, class_data):
    extra = [f"data.root={class_data}", f"data.crop_size={SIZE}", f"data.load_size={SIZE}",
             "model.feature_matching=l2", "model.minibatch_kernels=4",
             "model.historical_averaging=0.01", "model.label_smoothing=0.1",
             "model.generator_norm=virtual_batch", "model.vbn_reference_size=3",
             "model.d_average_decay=0.9", "train.max_steps=4", "train.checkpoint_every=100",
             "train.sample_every=100"]
    train(prepare_config(tiny_config("dcgan", extra=extra)), tmp_path / "full", progress=False)
    train(prepare_config(tiny_config("dcgan", extra=extra)), tmp_path / "split",
          progress=False, stop_at=2)
    train(checkpoint.read_config(tmp_path / "split"), tmp_path / "split", resume=True,
          progress=False)
    for name in ("generator", "discriminator", "method_state"):
        full = checkpoint_tensors(tmp_path / "full", name)
        split = checkpoint_tensors(tmp_path / "split", name)
        assert full.keys() == split.keys() and full
        for key in full:
            assert torch.equal(full[key], split[key]), f"{name}.{key}"


def checkpoint_tensors(run: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / f"{name}.safetensors")
