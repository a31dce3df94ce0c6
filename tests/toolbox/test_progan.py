"""ProGAN grows as the official schedule says (lod from the images shown, per-resolution batch
sizes and rates, Adam resets), fades blocks in as hand computations say, keeps a smoothed
generator, resumes exactly in the middle of a fade-in and measures SWD and MS-SSIM on its page."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from condsynth import checkpoint
from condsynth.errors import ConfigError
from condsynth.layers.progan import downscale2d, upscale2d
from condsynth.methods.base import Capability
from condsynth.registry import build_method
from condsynth.train import make_optimizers, prepare_config, resolve_optimizers, train, train_step
from tests.tiny import tiny_config
from tests.toolbox.conftest import write_class_folders

CPU = torch.device("cpu")


def progan(*extra: str):
    return build_method(tiny_config("progan", extra=list(extra)))


def test_lod_follows_the_official_schedule():
    method = progan("model.stabilize_images=600000", "model.fade_images=600000")   # 32x32
    hand = {0: 3.0, 600_000: 3.0, 900_000: 2.5, 1_200_000: 2.0, 1_350_000: 2.0,
            2_100_000: 1.5, 3_300_000: 0.5, 3_600_000: 0.0, 9_000_000: 0.0}
    for images, lod in hand.items():
        assert method.lod_for(images) == pytest.approx(lod), images
    assert progan("model.initial_resolution=32").lod_for(0) == 0.0        # no growing
    assert progan("model.initial_resolution=8").lod_for(0) == 2.0


def test_images_batch_sizes_rates_and_resets_by_step():
    # 8x8: 4x4 for 10 images, then 8x8 fades in over 20; batch 4 at 4x4, 2 at 8x8; the
    # schedule is evaluated every 2 iterations.
    method = build_method(tiny_config("progan", extra=[
        "data.crop_size=8", "data.load_size=8", "model.stabilize_images=10",
        "model.fade_images=20", "model.minibatch_repeats=2", "model.batch_sizes={4: 4, 8: 2}",
        "model.learning_rates={8: 0.002}", "train.batch_size=2"]))
    # chunk starts (images): 0 (lod 1), 8 (lod 1), 16 (lod 0.7), 20 (0.5), 24 (0.3), 28 (0.1),
    # 32 (lod 0: 32 - 30 = 2 images into the next phase, which has no level left)
    hand = [(0, 0, 1.0, 4), (1, 4, 1.0, 4), (2, 8, 1.0, 4), (3, 12, 1.0, 4), (4, 16, 0.7, 8),
            (5, 18, 0.7, 8), (6, 20, 0.5, 8), (10, 28, 0.1, 8), (12, 32, 0.0, 8)]
    for step, images, lod, resolution in hand:
        growth = method.growth(step)
        assert (growth.images, growth.resolution) == (images, resolution), step
        assert growth.lod == pytest.approx(lod), step
        plan = method.schedule(step)
        assert plan.batch_size == (4 if resolution == 4 else 2)
        assert plan.resolution == resolution
        assert plan.lr_scale == pytest.approx(2.0 if resolution == 8 else 1.0)
    resets = [s for s in range(16) if method.schedule(s).reset_optimizers]
    assert resets == [4, 12]            # the fade starts (floor 1 -> 0), ends (ceil 1 -> 0)
    assert not progan("model.reset_optimizers=false").schedule(2).reset_optimizers


def test_the_generator_fades_the_new_block_in():
    method = progan("data.crop_size=8", "data.load_size=8")
    g = method.generator
    z = torch.randn(2, method.latent_size())
    with torch.no_grad():
        x0 = g.norm(torch.nn.functional.leaky_relu(
            g.dense(g.latent_norm(z)).view(2, -1, 4, 4), 0.2))
        x0 = g.norm(torch.nn.functional.leaky_relu(g.blocks[0](x0), 0.2))
        conv0, conv1 = g.blocks[1]
        x1 = g.norm(torch.nn.functional.leaky_relu(conv0(upscale2d(x0)), 0.2))
        x1 = g.norm(torch.nn.functional.leaky_relu(conv1(x1), 0.2))
        old, new = upscale2d(g.to_rgb[0](x0)), g.to_rgb[1](x1)
        assert torch.allclose(g(z, 1.0), g.to_rgb[0](x0))                       # 4x4
        assert torch.allclose(g(z, 0.25), 0.75 * new + 0.25 * old, atol=1e-6)   # alpha 0.75
        assert torch.allclose(g(z, 0.0), new)


def test_the_discriminator_fades_the_new_block_in():
    method = progan("data.crop_size=8", "data.load_size=8", "model.mbstd_group_size=0")
    d = method.discriminator
    image = torch.randn(2, 3, 8, 8)
    lrelu = torch.nn.functional.leaky_relu

    def tail(x):
        x = lrelu(d.conv(x), 0.2)
        return d.dense1(lrelu(d.dense0(x.flatten(1)), 0.2)).flatten()

    with torch.no_grad():
        conv0, conv1 = d.blocks[0]
        new = downscale2d(lrelu(conv1(lrelu(conv0(lrelu(d.from_rgb[1](image), 0.2)), 0.2)), 0.2))
        old = lrelu(d.from_rgb[0](downscale2d(image)), 0.2)
        assert torch.allclose(d(image, 0.4), tail(0.6 * new + 0.4 * old), atol=1e-5)
        assert torch.allclose(d(downscale2d(image), 1.0), tail(old), atol=1e-5)


def test_real_images_are_resized_and_blended_like_the_official_process_reals():
    method = progan("data.crop_size=8", "data.load_size=8")
    image = torch.randn(2, 3, 8, 8)
    assert torch.allclose(method._reals({"image": image}, 1.0), downscale2d(image))
    blended = method._reals({"image": image}, 0.25)
    assert torch.allclose(blended, 0.75 * image + 0.25 * upscale2d(downscale2d(image)))


def test_the_smoothed_generator_averages_g_before_its_step():
    method = progan("model.g_smoothing=0.9")
    optimizers = make_optimizers(method, resolve_optimizers(method.config, method), CPU)
    smoothed0 = [p.clone() for p in method.generator_smoothed.parameters()]
    g0 = [p.detach().clone() for p in method.generator.parameters()]
    batch = {"image": torch.rand(2, 3, 32, 32) * 2 - 1}
    train_step(method, batch, optimizers, 0, "fp32", CPU)
    for s, s0, p0 in zip(method.generator_smoothed.parameters(), smoothed0, g0, strict=True):
        assert torch.allclose(s, 0.9 * s0 + 0.1 * p0)
    assert not any(p.requires_grad for p in method.generator_smoothed.parameters())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_at_a_lower_level_scales_the_penalty_norm(precision):
    method = progan()                                  # 32x32, at 4x4 (lod 3)
    batch = {"image": torch.rand(4, 3, 32, 32) * 2 - 1}
    optimizers = make_optimizers(method, resolve_optimizers(method.config, method), CPU)
    losses = train_step(method, batch, optimizers, 0, precision, CPU)
    assert set(losses) == {"d_wgan", "d_gp", "d_drift", "g_wgan"}
    assert all(torch.isfinite(v) for v in losses.values())
    # Replaying the D phase's random draws: the penalty is the full-size input's, 4/32 of
    # the 4x4 gradient norm.
    from condsynth.losses import gradient_penalty

    torch.manual_seed(3)
    real = method._reals(batch, 3.0)
    fake = method.generator(torch.randn(4, method.latent_size()), 3.0).detach()
    state = torch.get_rng_state()
    expected = gradient_penalty(lambda x: method.discriminator(x, 3.0), real, fake,
                                norm_scale=4 / 32)
    torch.set_rng_state(state)
    unscaled = gradient_penalty(lambda x: method.discriminator(x, 3.0), real, fake)
    torch.manual_seed(3)
    terms = method.phase_losses(method.phases()[0], batch, {"smoothed": True})
    assert terms["d_gp"].item() == pytest.approx(10.0 * expected.item(), rel=1e-5)
    assert expected.item() != pytest.approx(unscaled.item())


def test_generate_upsamples_to_the_image_size():
    method = progan().eval()
    assert float(method.lod) == 3.0 and method.resolution == 4
    image = method.generate(batch_size=2)
    assert image.shape == (2, 3, 32, 32)
    native = method.generate(z=torch.zeros(1, 8), native=True)
    assert native.shape == (1, 3, 4, 4)
    assert torch.equal(method.generate(z=torch.zeros(1, 8)), upscale2d(native, 8))
    assert {Capability.LATENT, Capability.RANDOM_LOOKS} <= method.capabilities()
    with pytest.raises(ConfigError, match="unconditional"):
        method.generate(torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("override, message", [
    ("model.batch_sizes={16: 6}", "not a multiple of model.mbstd_group_size"),
    ("model.learning_rates={64: 0.002}", "never trains at"),
    ("model.initial_resolution=6", "power of two"),
    ("train.ema=0.99", "Fix: train.ema=0"),
    ("data.crop_size=24", "power of two"),
])
def test_bad_settings_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        progan(override)


def saved(run: Path) -> dict[str, torch.Tensor]:
    out = {}
    for path in sorted(run.glob("*.safetensors")):
        out.update({f"{path.stem}.{k}": v for k, v in load_file(path).items()})
    return out


@pytest.mark.slow
def test_resume_in_the_middle_of_a_fade_in_equals_the_straight_run(tmp_path):
    data = write_class_folders(tmp_path / "data", {"train": 4})        # 12 images, 16x16
    extra = [f"data.root={data}", "data.crop_size=16", "data.load_size=16",
             "model.stabilize_images=8", "model.fade_images=16", "model.minibatch_repeats=2",
             "model.batch_sizes={4: 4, 8: 2, 16: 2}", "model.learning_rates={8: 0.002}",
             "train.max_steps=22", "train.checkpoint_every=100", "train.sample_every=100"]
    config = prepare_config(tiny_config("progan", extra=extra))
    method = build_method(config)
    stop = 5
    assert 0 < method.growth(stop).lod % 1 < 1                    # mid-fade, mid-chunk
    # lod by chunk of 2 steps: 2, 2, 1.5, 1.25, 1, 1, 1, 0.75, 0.5, 0.25, 0
    assert [s for s in range(22) if method.schedule(s).reset_optimizers] == [4, 8, 14, 20]
    train(prepare_config(tiny_config("progan", extra=extra)), tmp_path / "full", progress=False)
    train(prepare_config(tiny_config("progan", extra=extra)), tmp_path / "split",
          progress=False, stop_at=stop)
    assert saved(tmp_path / "split")["method_state.lod"].item() == pytest.approx(
        method.growth(stop - 1).lod)
    resumed = train(checkpoint.read_config(tmp_path / "split"), tmp_path / "split",
                    resume=True, progress=False)
    assert resumed.step == 22
    full, split = saved(tmp_path / "full"), saved(tmp_path / "split")
    assert full.keys() == split.keys()
    assert {"generator_smoothed", "method_state"} <= {k.split(".")[0] for k in full}
    for key in full:
        assert torch.equal(full[key], split[key]), key
    assert full["method_state.lod"].item() == 0.0                 # grown to 16x16
    # The learning rate of 8x8 (model.learning_rates) while G and D work at 8x8.
    logged = [json.loads(line) for line in (tmp_path / "full" / "losses.jsonl").open()]
    assert len(logged) == 22
    for entry in logged:
        at_8 = method.growth(entry["step"] - 1).resolution == 8
        assert entry["lr_g"] == pytest.approx(0.002 if at_8 else 0.001)


@pytest.mark.slow
def test_the_page_shows_swd_and_ms_ssim_as_the_resolution_grows(tmp_path):
    data = write_class_folders(tmp_path / "data", {"train": 4})
    extra = [f"data.root={data}", "data.crop_size=16", "data.load_size=16",
             "model.stabilize_images=4", "model.fade_images=4", "model.progress_images=8",
             "model.minibatch_repeats=1", "train.max_steps=10", "train.sample_every=5",
             "train.checkpoint_every=100"]
    run = tmp_path / "run"
    train(prepare_config(tiny_config("progan", extra=extra)), run, progress=False)
    records = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10]
    assert [r["resolution"] for r in records] == [8, 16]
    for r in records:
        assert set(r["swd"]["levels"]) == {"16x16"} and math.isfinite(r["swd"]["mean"])
        assert 0 <= r["ms_ssim"] <= 1 and 0 <= r["ms_ssim_real"] <= 1
    page = (run / "index.html").read_text()
    assert "SWD" in page and "MS-SSIM" in page and "16x16 (lod 0.00)" in page
    # The trained run samples through the command line at the image size.
    from PIL import Image

    from condsynth.cli import main

    assert main(["sample", str(run), "--count", "3", "--out", str(tmp_path / "samples")]) == 0
    with Image.open(tmp_path / "samples" / "sample_0002.png") as picture:
        assert picture.size == (16, 16)


def test_presets_hold_the_official_settings():
    from condsynth.methods.progan import feature_maps
    from condsynth.presets import load_preset

    celebahq = load_preset("progan_celebahq_1024")
    nf = feature_maps(celebahq.model)
    # 512 feature maps up to 32x32 (stage s works at 2^(s+1)), then halving up to 1024.
    assert [nf(s) for s in range(1, 10)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert celebahq.model.batch_sizes == {256: 14, 512: 6, 1024: 3}
    assert (celebahq.model.stabilize_images, celebahq.model.fade_images) == (800_000, 800_000)
    assert celebahq.data.flip and celebahq.train.beta1 == 0.0 and celebahq.train.beta2 == 0.99
    cifar = load_preset("progan_cifar10")
    assert {feature_maps(cifar.model)(s) for s in range(5)} == {128}
    assert (cifar.model.latent_size, cifar.model.gp_target) == (128, 750.0)
    method = build_method(cifar)
    assert method.images_shown(cifar.train.max_steps) == 20_000_000
    assert method.growth(cifar.train.max_steps).lod == 0.0
    cpu = build_method(load_preset("progan_cpu"))
    assert cpu.growth(1200).lod == 0.0 and cpu.growth(1199).lod > 0
