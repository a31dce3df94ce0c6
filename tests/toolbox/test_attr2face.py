"""Attributes → sketch → face (Di & Patel, 2017): every loss term against a hand computation,
the dense blocks' shapes, the data (sketches beside attribute tables, the attribute table made
from class data), ``--attributes`` and the three stages as a pipeline, end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from condsynth.api import load
from condsynth.cli import main
from condsynth.conditions import parse_attributes
from condsynth.config import DataConfig
from condsynth.data.attribute_tables import measure, measure_attributes
from condsynth.data.sources import open_dataset
from condsynth.errors import CheckpointError, ConfigError, DataError
from condsynth.layers.dense import DenseBlock, DenseUNet, TransitionDown, TransitionUp
from condsynth.layers.unet import UNetGenerator
from condsynth.losses import gaussian_nll, mean_kl_divergence, vgg16_feature_layers
from condsynth.methods.attr2face import gaussian_blur, reparameterize
from condsynth.methods.base import Phase
from condsynth.registry import build_method
from tests.tiny import tiny_batch, tiny_config
from tests.toolbox.conftest import ATTRIBUTES, write_attribute_table

SIZE = 32


# ----------------------------------------------------------------------------- loss formulas


def test_mean_kl_divergence_by_hand():
    mu = torch.tensor([[0.5, -1.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    # per element: -1/2 (1 + log s2 - mu^2 - s2)
    first = -0.5 * (1 + 0.0 - 0.25 - 1.0)
    second = -0.5 * (1 + math.log(4.0) - 1.0 - 4.0)
    assert mean_kl_divergence(mu, logvar).item() == pytest.approx((first + second) / 2)
    assert mean_kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_gaussian_nll_by_hand():
    mean = torch.tensor([[0.0, 1.0]])
    logvar = torch.tensor([[0.0, math.log(0.25)]])
    target = torch.tensor([[1.0, 0.5]])
    # sum of 1/2 (log s2 + log 2 pi) + (x - m)^2 / (2 s2)
    first = 0.5 * (0.0 + math.log(2 * math.pi)) + 1.0 / 2
    second = 0.5 * (math.log(0.25) + math.log(2 * math.pi)) + 0.25 / (2 * 0.25)
    assert gaussian_nll(mean, logvar, target).item() == pytest.approx(first + second)


def test_stage1_terms_are_the_paper_loss_with_its_weights():
    config = tiny_config("attr2sketch", extra=["model.lambda_nll=0.001",
                                               "model.lambda_kl_sketch=2.0"])
    method = build_method(config)
    batch = tiny_batch(config)
    torch.manual_seed(3)
    terms = method.phase_losses(Phase("cvae", "generator"), batch, {})
    assert set(terms) == {"kl_sketch", "kl_noise", "nll_sketch", "nll_noise"}
    # The same random draws, in the same order, by hand.
    torch.manual_seed(3)
    attributes, sketch = batch["attributes"], batch["source"]
    noise = torch.randn(2, config.model.z_dim)
    mu_s, logvar_s = method.encoder.q_sketch(sketch, attributes)
    mu_n, logvar_n = method.encoder.q_noise(noise, attributes)
    recon = method.generator(reparameterize(mu_s, logvar_s))
    fake = method.generator(reparameterize(mu_n, logvar_n))

    def kl(mu, logvar):
        return (-0.5 * (1 + logvar - mu ** 2 - logvar.exp())).mean()

    def nll(out):
        mean, logvar = out
        return (0.5 * (logvar + math.log(2 * math.pi))
                + (sketch - mean) ** 2 / (2 * logvar.exp())).sum()

    torch.testing.assert_close(terms["kl_sketch"], 2.0 * kl(mu_s, logvar_s))
    torch.testing.assert_close(terms["kl_noise"], kl(mu_n, logvar_n))
    torch.testing.assert_close(terms["nll_sketch"], 0.001 * nll(recon))
    torch.testing.assert_close(terms["nll_noise"], 0.001 * nll(fake))


def test_stage1_samples_from_noise_and_attributes_alone():
    method = build_method(tiny_config("attr2sketch")).eval()
    attributes = torch.tensor([[1.0, -1.0, 1.0]])
    z = torch.randn(1, method.latent_size())
    torch.manual_seed(0)
    a = method.generate(attributes, z=z)
    assert a.shape == (1, 1, SIZE, SIZE)
    assert not torch.equal(a, method.generate(attributes, z=z))     # z drawn from q_beta
    torch.manual_seed(0)
    assert torch.equal(a, method.generate(attributes, z=z))
    mean = build_method(tiny_config("attr2sketch", extra=["model.sample_posterior=false"]))
    mean.load_state_dict(method.state_dict())
    mean.eval()
    b = mean.generate(attributes, z=z)
    assert torch.equal(b, mean.generate(attributes, z=z))            # z alone fixes the sketch
    mu, _ = mean.encoder.q_noise(z, attributes)
    torch.testing.assert_close(b, mean.generator(mu)[0])
    assert not torch.equal(b, mean.generate(-attributes, z=z))       # attributes matter
    with pytest.raises(DataError, match="attribute values"):
        method.generate(torch.ones(1, 5))
    with pytest.raises(DataError, match="none were given"):
        method.generate(None)


def perceptual_file(tmp_path: Path, seed: int = 0) -> Path:
    """A VGG16 trunk up to relu1_2 with random weights, in torchvision's key names."""
    torch.manual_seed(seed)
    trunk = vgg16_feature_layers(4)
    path = tmp_path / "vgg16_relu1_2.pth"
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, path)
    return path


def hand_perceptual(path: Path, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    trunk = vgg16_feature_layers(4)
    trunk.load_state_dict({k[len("features."):]: v for k, v in torch.load(path).items()})
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(x):
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return trunk(((x + 1) / 2 - mean) / std)

    return (features(fake) - features(real)).abs().mean()


@pytest.mark.parametrize("name, weight", [("sketch2sketch", 10.0), ("sketch2face", 5.0)])
def test_stage_2_and_3_generator_terms_by_hand(name, weight, tmp_path):
    weights = perceptual_file(tmp_path)
    config = tiny_config(name, extra=[f"model.perceptual_weights={weights}",
                                      f"model.lambda_perceptual={weight}"])
    assert config.model.lambda_l1 == 50.0            # the paper's weight, by default
    method = build_method(config)
    batch = tiny_batch(config)
    out = method.forward_generator(batch)
    terms = method.generator_step(batch, out)
    assert set(terms) == {"g_gan", "g_l1", "g_perceptual"}
    fake = out["fake"]
    target = batch["source"] if name == "sketch2sketch" else batch["image"]
    torch.testing.assert_close(terms["g_l1"], 50.0 * (fake - target).abs().mean())
    torch.testing.assert_close(terms["g_perceptual"],
                               weight * hand_perceptual(weights, fake, target))
    pred = method.discriminator(torch.cat([out["input"], fake], 1))[-1]
    torch.testing.assert_close(terms["g_gan"],
                               F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred)))


def test_a_domain_classifier_as_the_perceptual_network(tmp_path, class_data):
    from condsynth.metrics.classifier import load_classifier, train_classifier

    path = train_classifier(class_data, tmp_path / "clf.safetensors", steps=2, width=4,
                            feature_dim=8, batch_size=4, progress=False)
    config = tiny_config("sketch2face", extra=["model.perceptual_network=classifier",
                                               f"model.perceptual_weights={path}",
                                               "model.lambda_perceptual=5.0"])
    method = build_method(config)
    batch = tiny_batch(config)
    out = method.forward_generator(batch)
    terms = method.generator_step(batch, out)
    clf = load_classifier(path)
    with torch.no_grad():
        expected = (clf.features(out["fake"]) - clf.features(batch["image"])).abs().mean()
    torch.testing.assert_close(terms["g_perceptual"], 5.0 * expected)
    terms["g_perceptual"].backward()                  # the term trains the generator
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in method.generator.parameters())
    missing = build_method(tiny_config("sketch2face", extra=[
        "model.perceptual_network=classifier", "model.lambda_perceptual=5.0"]))
    with pytest.raises(ConfigError, match="classifier train"):
        missing.generator_step(batch, missing.forward_generator(batch))


@pytest.mark.parametrize("name", ["sketch2sketch", "sketch2face"])
def test_stage_2_and_3_discriminator_terms_are_halved(name):
    method = build_method(tiny_config(name))
    batch = tiny_batch(name)
    out = method.forward_generator(batch)
    terms = method.discriminator_step(batch, out)
    fake = method.discriminator(torch.cat([out["input"], out["fake"]], 1))[-1]
    real = method.discriminator(torch.cat([out["input"], out["target"]], 1))[-1]
    torch.testing.assert_close(
        terms["d_fake"], 0.5 * F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(
        terms["d_real"], 0.5 * F.binary_cross_entropy_with_logits(real, torch.ones_like(real)))


def test_stage2_trains_on_blurred_sketches_and_stage3_on_real_ones():
    s2 = build_method(tiny_config("sketch2sketch", extra=["model.coarse_blur=1.0"]))
    batch = tiny_batch("sketch2sketch")
    source, target = s2.input_and_target(batch)
    assert torch.equal(target, batch["source"])
    torch.testing.assert_close(source, gaussian_blur(batch["source"], 1.0))
    s3 = build_method(tiny_config("sketch2face"))
    source, target = s3.input_and_target(batch)
    assert torch.equal(source, batch["source"]) and torch.equal(target, batch["image"])


def test_gaussian_blur_keeps_flat_pictures_and_spreads_a_dot():
    flat = torch.full((1, 1, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.5), flat)
    dot = torch.zeros(1, 1, 15, 15)
    dot[0, 0, 7, 7] = 1.0
    blurred = gaussian_blur(dot, 1.0)
    t = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-0.5 * t ** 2)
    kernel /= kernel.sum()
    torch.testing.assert_close(blurred[0, 0, 4:11, 4:11], kernel[:, None] * kernel[None, :])


def test_missing_perceptual_weights_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CONDSYNTH_VGG16_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    config = tiny_config("sketch2face", extra=["model.lambda_perceptual=5.0"])
    method = build_method(config)
    batch = tiny_batch(config)
    with pytest.raises(CheckpointError, match="never downloads"):
        method.generator_step(batch, method.forward_generator(batch))


# ----------------------------------------------------------------------------- networks


def test_dense_block_and_transition_shapes():
    x = torch.randn(2, 8, 16, 16)
    block = DenseBlock(8, growth=4, num_layers=3)
    assert block.out_channels == 20
    y = block(x)
    assert y.shape == (2, 20, 16, 16)
    assert torch.equal(y[:, :8], x)                          # the input is passed on unchanged
    assert TransitionDown(20, 10)(y).shape == (2, 10, 8, 8)
    assert TransitionUp(20, 6)(y).shape == (2, 6, 32, 32)


def test_dense_unet_shapes_and_attribute_conditioning():
    torch.manual_seed(0)
    net = DenseUNet(1, 1, vector_size=3, embed_size=8, ngf=8, growth=4, layers_per_block=2,
                    levels=3).eval()
    x = torch.randn(2, 1, 32, 32)
    a = torch.tensor([[1.0, -1.0, 1.0], [1.0, -1.0, 1.0]])
    y = net(x, a)
    assert y.shape == (2, 1, 32, 32) and y.abs().max() <= 1
    assert not torch.equal(y, net(x, -a))
    with pytest.raises(ValueError, match="vector"):
        net(x)


def test_unet_takes_a_vector_at_its_bottleneck():
    torch.manual_seed(0)
    net = UNetGenerator(1, 3, ngf=8, num_downs=5, vector_size=4, dropout=False).eval()
    x = torch.randn(1, 1, 32, 32)
    v = torch.ones(1, 4)
    assert net(x, v).shape == (1, 3, 32, 32)
    assert not torch.equal(net(x, v), net(x, -v))


# ----------------------------------------------------------------------------- data


def test_attribute_tables_give_xdog_sketches(tmp_path):
    root = write_attribute_table(tmp_path / "t", 3)
    data = DataConfig(root=str(root), layout="attributes_csv", load_size=SIZE, crop_size=SIZE,
                      preprocess="fixed", flip=False, line_extraction="xdog")
    item = open_dataset(data, "train", train=False, seed=0)[0]
    assert item["source"].shape == (1, SIZE, SIZE)
    assert item["attributes"].shape == (3,)
    assert item["source"].min() < 0 < item["source"].max()         # lines on white paper
    plain = open_dataset(DataConfig(root=str(root), layout="attributes_csv", load_size=SIZE,
                                    crop_size=SIZE, preprocess="fixed"), "train", False, 0)[0]
    assert "source" not in plain


def test_the_celeba_release_gives_attributes_and_sketches(tmp_path):
    images = tmp_path / "img_align_celeba"
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 255, (40, 36, 3)).astype(np.uint8)).save(images / name)
        rows.append(f"{name}  {' '.join(['1', '-1', '1'] if i else ['-1', '-1', '1'])}")
    (tmp_path / "list_attr_celeba.txt").write_text(
        "3\nSmiling Eyeglasses Male\n" + "\n".join(rows) + "\n")
    data = DataConfig(root=str(tmp_path), layout="celeba", load_size=SIZE, crop_size=SIZE,
                      preprocess="fixed", flip=False, line_extraction="xdog")
    item = open_dataset(data, "train", train=False, seed=0)[1]
    assert item["attributes"].tolist() == [1.0, -1.0, 1.0]
    assert item["source"].shape == (1, SIZE, SIZE) and item["image"].shape == (3, SIZE, SIZE)


def test_measured_attributes_by_hand():
    images = np.zeros((2, 4, 4), np.uint8)
    images[0, :2, :2] = 200                       # 4 filled pixels of 200
    images[1, :, :3] = 100                        # 12 filled pixels of 100
    images[1, 0, 3] = 20                          # below the fill level: ground
    brightness, area = measure(images)
    np.testing.assert_allclose(brightness, [200, 100])
    np.testing.assert_allclose(area, [4 / 16, 12 / 16])
    meta = {"brightness_median": 150.0, "area_median": 0.5}
    assert measure_attributes(images, meta).tolist() == [[1, -1], [-1, 1]]


def test_attribute_table_from_idx_class_data(tmp_path):
    from tests.data.builders import write_idx

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for phase, n in (("train", 6), ("t10k", 2)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        write_idx(folder / f"{phase}-images-idx3-ubyte", images)
        write_idx(folder / f"{phase}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 3)
    out = tmp_path / "table"
    assert main(["data", "attributes-from-classes", "--idx", str(folder), "--out", str(out),
                 "--quiet"]) == 0
    meta = json.loads((out / "attributes.json").read_text())
    assert meta["attributes"] == ["Class_T_shirt_top", "Class_Trouser", "Class_Pullover",
                                  "Bright", "Large"]
    rows = (out / "train" / "attributes.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[2].startswith("00001.png,-1,1,-1,")
    assert Image.open(out / "train" / "00000.png").size == (32, 32)


def test_parse_attributes():
    vector, notes = parse_attributes("Smiling=1, Male=0.5", list(ATTRIBUTES))
    assert vector.tolist() == [[1.0, -1.0, 0.5]]
    assert notes == ["attributes not given are -1: Eyeglasses"]
    with pytest.raises(ConfigError, match="did you mean 'Smiling'"):
        parse_attributes("Smilng=1", list(ATTRIBUTES))
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_attributes("Smiling", list(ATTRIBUTES))
    with pytest.raises(ConfigError, match="twice"):
        parse_attributes("Smiling=1,Smiling=-1", list(ATTRIBUTES))


# ----------------------------------------------------------------------------- pipeline


@pytest.mark.slow
def test_the_pipeline_trains_and_synthesizes_every_stage(tmp_path, capsys):
    data = write_attribute_table(tmp_path / "data", 6)
    run = tmp_path / "run"
    small = ["train.max_steps=2", "train.batch_size=2", "train.sample_every=2",
             "train.checkpoint_every=1", "train.num_samples=2", "train.tensorboard=false",
             "data.channels=3", "sketch.model.ngf=8", "sketch.model.z_dim=8",
             "sketch.model.embed_dim=8", "refine.model.ngf=8", "refine.model.growth=4",
             "refine.model.embed_dim=8", "refine.model.ndf=8", "image.model.ngf=8",
             "image.model.ndf=8"]
    assert main(["train", "--config", "attr2sketch2face_fmnist_cpu", "--run", str(run),
                 "--data", str(data), "--quiet", *small]) == 0
    for stage in ("sketch", "refine", "image"):
        assert (run / stage / "generator.safetensors").is_file()
        assert json.loads((run / stage / "losses.jsonl").read_text().splitlines()[-1])["step"] == 2
    out = tmp_path / "out"
    assert main(["synthesize", str(run), "--attributes", "Smiling=1,Eyeglasses=1", "--seed", "3",
                 "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    for stage in ("sketch", "refine", "image"):
        assert stage in page
        assert list(out.glob(f"{stage}_*.png")), stage
    again = tmp_path / "again"
    assert main(["synthesize", str(run), "--attributes", "Smiling=1,Eyeglasses=1", "--seed", "3",
                 "--out", str(again)]) == 0
    for path in out.glob("image_*.png"):
        assert np.array_equal(np.asarray(Image.open(path)),
                              np.asarray(Image.open(again / path.name)))
    assert main(["synthesize", str(run), "--attributes", "Smilng=1", "--out", str(out)]) != 0
    assert "did you mean 'Smiling'" in capsys.readouterr().err
    # One stage alone: stage 1 from attributes, stage 3 from a sketch and attributes.
    assert main(["synthesize", str(run / "sketch"), "--attributes", "Male=1", "--seed", "1",
                 "--out", str(tmp_path / "sketch.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "sketch.png")).shape[:2] == (SIZE, SIZE)
    # Stage 2 on stage 1's reconstructions, as the official code trains it.
    refine = build_method(tiny_config("sketch2sketch",
                                      extra=[f"model.coarse_run={run / 'sketch'}"]))
    batch = tiny_batch("sketch2sketch")
    coarse, target = refine.input_and_target(batch)
    stage1 = load(run / "sketch", device="cpu")
    torch.testing.assert_close(coarse, stage1.reconstruct(batch["source"], batch["attributes"]))
    assert torch.equal(target, batch["source"])
    assert not any(name.startswith("_stage1") for name, _ in refine.named_parameters())
    drawing = np.full((SIZE, SIZE), 255, np.uint8)
    drawing[8:24, 12] = 0                                     # a line on white paper
    Image.fromarray(drawing).save(tmp_path / "drawing.png")
    assert main(["synthesize", str(run / "image"), "--attributes", "Male=1", "--sketch",
                 str(tmp_path / "drawing.png"), "--out", str(tmp_path / "face.png")]) == 0
    assert Image.open(tmp_path / "face.png").size == (SIZE, SIZE)


def test_the_shipped_pipelines_resolve():
    from condsynth.pipeline import load_pipeline, pipeline_presets
    from condsynth.registry import parse_config

    assert {"attr2sketch2face", "attr2sketch2face_fmnist_cpu"} <= set(pipeline_presets())
    paper = load_pipeline("attr2sketch2face")
    configs = {s.name: parse_config(s.config) for s in paper.stages}
    assert [c.method for c in configs.values()] == ["attr2sketch", "sketch2sketch",
                                                    "sketch2face"]
    assert configs["refine"].model.lambda_perceptual == 10.0
    assert configs["face"].model.lambda_perceptual == 5.0
    assert all(c.data.crop_size == 64 and c.train.batch_size == 128 for c in configs.values())
    assert [s.inputs for s in paper.chain] == [
        {"cond": "input:attributes"}, {"cond": "sketch", "attributes": "input:attributes"},
        {"cond": "refine", "attributes": "input:attributes"}]
    assert len(load_pipeline("attr2sketch2face_fmnist_cpu").stages) == 3
