"""LAPGAN: band targets, independent levels, the cascade, the official networks and SGD rule,
the class-conditional variant, ``condsynth sample --levels``."""

from __future__ import annotations

import math

import pytest
import torch

from condsynth import checkpoint
from condsynth.errors import ConfigError
from condsynth.layers.pyramid import gaussian_pyramid, upsample
from condsynth.methods.base import OptimizerSpec
from condsynth.methods.lapgan import uniform_noise
from condsynth.registry import build_method
from condsynth.train import make_optimizers, prepare_config, resolve_optimizers, train
from tests.tiny import tiny_batch, tiny_config
from tests.toolbox.conftest import write_class_folders

CPU = torch.device("cpu")


def tiny(*extra: str):
    return build_method(tiny_config("lapgan", extra=list(extra)))


def test_band_targets_are_the_laplacian_levels():
    method = tiny("model.levels=3")
    assert method.sizes == [8, 16, 32]
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    targets = method.level_targets(image)
    gauss = gaussian_pyramid(image, [(32, 32), (16, 16), (8, 8)], "bilinear")
    low0, band0 = targets[0]
    assert low0 is None
    torch.testing.assert_close(band0, gauss[2])                       # the coarsest image
    for k, (fine, coarse) in enumerate(((gauss[1], gauss[2]), (gauss[0], gauss[1])), start=1):
        low, band = targets[k]
        torch.testing.assert_close(low, upsample(coarse, fine.shape[-2:], "bilinear"))
        torch.testing.assert_close(band, fine - low)                 # h_k = I_k - u(I_{k-1})
        torch.testing.assert_close(low + band, fine)


def test_a_constant_image_has_zero_bands_and_a_constant_context():
    method = tiny()
    targets = method.level_targets(torch.full((1, 3, 32, 32), 0.25))
    low, band = targets[1]
    torch.testing.assert_close(band, torch.zeros_like(band))
    torch.testing.assert_close(low, torch.full_like(low, 0.25))


def test_no_gradient_crosses_levels():
    method = tiny("model.levels=3")
    groups = method.parameter_groups()
    assert sorted(groups) == sorted(f"{p}_{s}" for p in ("generator", "discriminator")
                                    for s in (8, 16, 32))
    batch = tiny_batch(tiny_config("lapgan"))
    for phase in method.phases():
        method.zero_grad(set_to_none=True)
        terms = method.phase_losses(phase, batch, {})
        assert all(name.endswith(phase.name.rpartition("_")[2]) for name in terms)
        sum(terms.values()).backward()
        for name, params in groups.items():
            touched = any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
            assert touched == (name == phase.optimizer), (phase.name, name)


def test_each_level_trains_on_the_real_pyramid_not_on_other_levels_output():
    # A level's losses are a function of the batch and its own G and D: changing every other
    # level's weights leaves them unchanged (same noise).
    method = tiny("model.levels=3")
    batch = tiny_batch(tiny_config("lapgan"))
    phase = next(p for p in method.phases() if p.name == "discriminator_32")
    method.eval()                                                      # no dropout
    torch.manual_seed(0)
    before = method.phase_losses(phase, batch, {})
    with torch.no_grad():
        for k in (0, 1):
            for p in [*method.generator.levels[k].parameters(),
                      *method.discriminator[k].parameters()]:
                p.add_(1.0)
    torch.manual_seed(0)
    after = method.phase_losses(phase, batch, {})
    for key in before:
        torch.testing.assert_close(before[key], after[key])


def test_uniform_noise_is_the_normal_cdf_map():
    z = torch.tensor([0.0, 1.0, -2.0])
    # 2 Phi(z) - 1: Phi(1) = 0.8413447461, Phi(-2) = 0.0227501319.
    expected = torch.tensor([0.0, 2 * 0.8413447461 - 1, 2 * 0.0227501319 - 1])
    torch.testing.assert_close(uniform_noise(z), expected)
    u = uniform_noise(torch.randn(200_000, generator=torch.Generator().manual_seed(0)))
    assert u.abs().max() < 1
    assert abs(float(u.mean())) < 0.01 and abs(float(u.var()) - 1 / 3) < 0.01   # U(-1, 1)


def test_the_cascade_adds_each_level_band_to_the_upsampled_image():
    method = tiny("model.levels=3").eval()
    assert method.latent_size() == 8 + 16 * 16 + 32 * 32
    z = torch.randn(3, method.latent_size())
    images = method.cascade(z=z)
    assert [tuple(i.shape) for i in images] == [(3, 3, 8, 8), (3, 3, 16, 16), (3, 3, 32, 32)]
    noises = method.noises(z)
    assert [tuple(n.shape) for n in noises] == [(3, 8), (3, 1, 16, 16), (3, 1, 32, 32)]
    levels = method.generator.levels
    with torch.no_grad():
        coarse = levels[0](noises[0])
        torch.testing.assert_close(images[0], coarse)
        for k in (1, 2):
            low = method.upsample(images[k - 1], method.sizes[k])
            torch.testing.assert_close(images[k], low + levels[k](noises[k], low))
    out = method.generate(z=z)
    torch.testing.assert_close(out, images[-1].clamp(-1, 1))
    torch.testing.assert_close(method.generate(z=z), out)              # a code reproduces
    torch.manual_seed(4)
    a = method.generate(batch_size=2)
    torch.manual_seed(4)
    torch.testing.assert_close(method.generate(batch_size=2), a)
    with pytest.raises(ConfigError, match="takes"):
        method.generate(z=torch.randn(2, 8))


def test_official_level_networks():
    method = tiny("model.hidden_g=64", "model.hidden_d=64")
    g, d = method.generator.levels[1], method.discriminator[1]
    assert [tuple(m.weight.shape) for m in g.layers if isinstance(m, torch.nn.Conv2d)] == \
        [(64, 4, 7, 7), (64, 64, 7, 7), (3, 64, 5, 5)]                # noise + RGB in
    convs = [m for m in d.layers if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(m.weight.shape) for m in convs] == [(64, 3, 5, 5), (64, 64, 5, 5)]
    assert [m.stride for m in convs] == [(1, 1), (2, 2)]
    # floor(((32 - 5 + 1) - 5) / 2 + 1) = 12, as the official code sizes D's linear layer.
    assert d.layers[-1].in_features == 64 * 12 * 12
    band, low = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    d.eval()
    torch.testing.assert_close(d(band, low), d(band + low, torch.zeros_like(low)))  # the sum
    fc_g, fc_d = method.generator.levels[0], method.discriminator[0]
    assert isinstance(fc_g.layers[3], torch.nn.Sigmoid)
    assert abs(float(fc_g.layers[0].weight.detach().std()) - 0.05) < 0.01
    assert abs(float(fc_d.layers[0].weight.detach().std()) - 0.005) < 0.001


def test_class_conditional_variant_adds_a_class_plane_everywhere():
    config = tiny_config("lapgan", extra=["condition.kind=class",
                                                 "condition.num_classes=5"])
    method = build_method(config).eval()
    g, d = method.generator.levels[1], method.discriminator[1]
    assert g.layers[0].in_channels == 1 + 1 + 3 and d.layers[0].in_channels == 3 + 1
    assert g.class_plane.linear.in_features == 5 and g.class_plane.linear.out_features == 32 * 32
    assert method.generator.levels[0].layers[0].in_features == 8 + 5
    assert isinstance(method.generator.levels[0].layers[3], torch.nn.ReLU)
    z = torch.randn(2, method.latent_size())
    a = method.generate(torch.tensor([0, 0]), z=z)
    b = method.generate(torch.tensor([3, 3]), z=z)
    assert a.shape == (2, 3, 32, 32) and not torch.equal(a, b)
    batch = tiny_batch(config)
    for phase in method.phases():
        terms = method.phase_losses(phase, batch, {})
        assert all(torch.isfinite(v) for v in terms.values())


def test_the_papers_cifar_pyramid_does_not_halve():
    method = tiny("model.sizes=[8,14,28]", "data.crop_size=28", "data.load_size=28").eval()
    assert [tuple(i.shape[-2:]) for i in method.cascade(batch_size=1)] == \
        [(8, 8), (14, 14), (28, 28)]
    targets = method.level_targets(torch.rand(2, 3, 28, 28))
    assert [tuple(b.shape[-2:]) for _, b in targets] == [(8, 8), (14, 14), (28, 28)]


@pytest.mark.parametrize(("overrides", "match"), [
    (["model.sizes=[8,16]"], "end at the image size"),
    (["model.sizes=[16,8,32]"], "rise strictly"),
    (["model.levels=1"], "at least 2"),
    (["model.levels=4"], "at least 9x9"),
    (["model.sizes=[8,14,28]", "data.crop_size=28", "model.resample=binomial"], "halves"),
])
def test_bad_pyramids_are_clear_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        tiny(*overrides)


def test_official_sgd_rule_per_epoch():
    method = tiny("model.optimizer=sgd")
    spec = method.optimizers()["generator_32"]
    assert spec.kind == "sgd" and spec.lr == 0.02 and spec.betas[0] == 0.5
    for epoch, momentum in ((0, 0.5), (1, 0.5008), (10, 0.508), (250, 0.7), (900, 0.7)):
        settings = method.epoch_settings("generator_32", spec, epoch, 0.02)
        assert settings["momentum"] == pytest.approx(momentum, abs=1e-12)
        assert settings["dampening"] == settings["momentum"]            # torch7's optim.sgd
        assert settings["lr"] == pytest.approx(0.02 / 1.000004 ** epoch, rel=1e-12)
    assert method.epoch_settings("generator_32", spec, 10 ** 7, 0.02)["lr"] == 1e-6  # floor
    adam = OptimizerSpec(lr=2e-4)
    assert method.epoch_settings("generator_32", adam, 5, 2e-4) == {}


def test_sgd_with_dampening_steps_as_torch7():
    # torch7 optim.sgd (dampening = momentum): v1 = g1, then v = m v + (1 - m) g; x -= lr v.
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    method = tiny("model.optimizer=sgd")
    spec = OptimizerSpec(lr=0.1, betas=(0.5, 0.999), kind="sgd")
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.5)
    for group in optimizer.param_groups:
        group.update(method.epoch_settings("g", spec, 0, 0.1))
    for g in (2.0, 4.0):
        weight.grad = torch.tensor([g])
        optimizer.step()
    # v1 = 2, x1 = 1 - 0.2 = 0.8; v2 = 0.5 * 2 + 0.5 * 4 = 3, x2 = 0.8 - 0.3 = 0.5.
    torch.testing.assert_close(weight.detach(), torch.tensor([0.5]))


@pytest.mark.slow
def test_training_applies_the_sgd_rule_at_each_epoch(tmp_path):
    root = write_class_folders(tmp_path / "data", {"train": 2})          # 6 images
    config = prepare_config(tiny_config("lapgan", extra=[
        f"data.root={root}", "data.crop_size=16", "data.load_size=16", "model.optimizer=sgd",
        "train.batch_size=3", "train.max_steps=5", "train.sample_every=100",
        "train.checkpoint_every=100"]))                                 # 2 steps per epoch
    train(config, tmp_path / "run", progress=False)
    state = checkpoint.read_train_state(tmp_path / "run")
    for name in ("generator_8", "discriminator_16"):
        group = state["optimizers"][name]["param_groups"][0]
        assert group["momentum"] == pytest.approx(0.5 + 2 * 0.0008)      # step 5: epoch 2
        assert group["dampening"] == group["momentum"]
        assert group["lr"] == pytest.approx(0.02 / 1.000004 ** 2)


def test_lr_shorthands_set_every_level():
    config = tiny_config("lapgan", extra=["train.lr_g=0.001", "train.lr_d=0.003"])
    method = build_method(config)
    specs = resolve_optimizers(config, method)
    assert {n: s.lr for n, s in specs.items()} == {
        "generator_16": 0.001, "generator_32": 0.001,
        "discriminator_16": 0.003, "discriminator_32": 0.003}
    optimizers = make_optimizers(method, specs, CPU)
    assert all(isinstance(o, torch.optim.Adam) for o in optimizers.values())


def test_sample_levels_page_shows_the_samples_cascade(tmp_path):
    import numpy as np
    from PIL import Image

    from condsynth.api import load
    from condsynth.cli import main
    from condsynth.data.dataset import tensor_to_image

    method = tiny("model.levels=3")
    run = tmp_path / "run"
    checkpoint.write_checkpoint(run, method.config, method.networks(), step=1,
                                method_state=method.method_state())
    out = tmp_path / "samples"
    assert main(["sample", str(run), "--out", str(out), "--count", "3", "--levels",
                 "--quiet", "--device", "cpu"]) == 0
    page = (out / "levels.html").read_text()
    assert "levels/0002_32_band.png" in page and "levels/0000_8.png" in page
    last = np.asarray(Image.open(out / "levels" / "0001_32.png"))
    sample = np.asarray(Image.open(out / "sample_0001.png"))
    assert np.array_equal(last, sample)                    # the same draw as index.html
    loaded = load(run, device="cpu")
    torch.manual_seed(0)
    images = loaded.cascade(batch_size=3)
    coarse = torch.nn.functional.interpolate(images[0][1:2], size=(32, 32), mode="nearest")[0]
    assert np.array_equal(np.asarray(Image.open(out / "levels" / "0001_8.png")),
                          tensor_to_image(coarse))
    assert math.isclose(len(list((out / "levels").glob("*.png"))), 3 * (1 + 3 * 2))


def test_the_studio_serves_lapgan_in_sample_mode():
    import base64
    import io
    import json

    import numpy as np
    from PIL import Image

    from condsynth.data.dataset import tensor_to_image
    from condsynth.studio.server import StudioModel, StudioServer, latent_code
    from tests.studio.conftest import assert_close, call

    torch.manual_seed(0)
    method = tiny().eval()
    server = StudioServer([StudioModel("lap", "lap-run", method)], port=0)
    server.start()
    try:
        models = json.loads(call(server, "/api/models")[2])["models"]
        assert (models[0]["mode"], models[0]["latent_size"]) == ("sample", method.latent_size())
        status, _, body = call(server, "/api/generate", {"model": "lap", "seed": 3})
        assert status == 200, body
        url = json.loads(body)["image"]
        got = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    finally:
        server.shutdown()
        server.server_close()
    expected = tensor_to_image(method.generate(z=latent_code(3, method.latent_size()))[0])
    assert_close(got, expected)


def test_levels_are_refused_for_a_model_without_a_pyramid():
    from condsynth.sampling import check_cascade

    check_cascade(tiny())
    with pytest.raises(ConfigError, match="leave out --levels"):
        check_cascade(build_method(tiny_config("dcgan")))
