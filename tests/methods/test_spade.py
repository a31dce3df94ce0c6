"""SPADE / GauGAN as a method: generator sizes, VAE and style, losses, label modes, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from condsynth import checkpoint
from condsynth.api import load
from condsynth.config import Config, apply_overrides
from condsynth.errors import CondsynthError, ConfigError
from condsynth.losses import vgg19_feature_layers
from condsynth.methods.spade import (
    ConvEncoder,
    GauGAN,
    SPADEGenerator,
    latent_grid,
    reparameterize,
)
from condsynth.presets import load_preset
from condsynth.registry import build_method, default_config, parse_config

NUM_CLASSES = 5
SMALL = ["model.ngf=8", "model.ndf=8", "model.spade_hidden=16", "model.lambda_vgg=0"]


def spade_config(*overrides: str, size: int = 32, classes: int = NUM_CLASSES,
                 instance: bool = True) -> Config:
    raw = default_config("spade").to_dict()
    raw["condition"].update(num_classes=classes, use_instance=instance)
    raw["data"].update(load_size=size, crop_size=size)
    return parse_config(apply_overrides(raw, SMALL + list(overrides)))


def make_batch(batch: int = 2, height: int = 32, width: int = 32, classes: int = NUM_CLASSES,
               seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, classes, (batch, height // 8, width // 8), generator=g)
    label = label.repeat_interleave(8, 1).repeat_interleave(8, 2)     # blocky layouts
    return {"label": label, "instance": label * 1000,
            "image": torch.rand(batch, 3, height, width, generator=g) * 2 - 1}


def train_step(method: GauGAN, batch: dict) -> dict[str, torch.Tensor]:
    out = method.forward_generator(batch)
    d_losses = method.discriminator_step(batch, out)
    sum(d_losses.values()).backward()
    g_losses = method.generator_step(batch, out)
    sum(g_losses.values()).backward()
    return {**d_losses, **g_losses}


# ------------------------------------------------------------------------------- generator


def test_latent_grid_follows_the_official_formula():
    assert latent_grid(256, 1.0, 5) == (8, 8)
    assert latent_grid(512, 2.0, 6) == (4, 8)      # Cityscapes: 256x512 with "more"
    assert latent_grid(96, 1.5, 5) == (2, 3)       # round(3 / 1.5)
    assert latent_grid(256, 4.0, 5) == (2, 8)
    with pytest.raises(ConfigError, match="starting grid"):
        latent_grid(16, 1.0, 5)


@pytest.mark.parametrize("mode,num_up,blocks", [("normal", 5, 7), ("more", 6, 7),
                                                 ("most", 7, 8)])
def test_generator_depths(mode, num_up, blocks):
    g = SPADEGenerator(4, ngf=4, num_upsampling_layers=mode, base_grid=(1, 2), hidden=4,
                       norm="batch").eval()
    names = [n for n, m in g.named_children() if n.startswith(("head", "G_middle", "up_"))]
    assert len(names) == blocks
    assert g.conv_img.in_channels == (2 if mode == "most" else 4)
    size = 2 ** num_up
    out = g(torch.rand(1, 4, size, 2 * size))
    assert out.shape == (1, 3, size, 2 * size)
    # Not a multiple of 2**num_up: the official rule, base_grid * 2**num_up.
    assert g(torch.rand(1, 4, size + 3, size)).shape == (1, 3, size, 2 * size)


def test_generator_channels_follow_the_paper():
    g = SPADEGenerator(3, ngf=4, hidden=8)
    widths = [(b.conv_0.weight_orig.shape[1], b.conv_1.weight_orig.shape[0])
              for b in (g.head_0, g.G_middle_0, g.G_middle_1, g.up_0, g.up_1, g.up_2, g.up_3)]
    assert widths == [(64, 64), (64, 64), (64, 64), (64, 32), (32, 16), (16, 8), (8, 4)]
    assert g.fc.weight.shape == (64, 3, 3, 3)
    vae = SPADEGenerator(3, ngf=4, base_grid=(2, 8), hidden=8, z_dim=16)
    assert isinstance(vae.fc, nn.Linear) and vae.fc.weight.shape == (64 * 2 * 8, 16)


def test_any_size_inference_and_the_official_size():
    method = build_method(spade_config("model.fit_size=false")).eval()   # trained crop 32x32
    for h, w in [(32, 32), (64, 32), (32, 96)]:
        batch = make_batch(1, h, w)
        assert method.generate(batch["label"], instance=batch["instance"]).shape == (1, 3, h, w)
    odd = make_batch(1, 40, 40)                            # not a multiple of 32
    assert method.generate(odd["label"], instance=odd["instance"]).shape == (1, 3, 32, 32)
    assert method.size_multiple() == 32
    assert build_method(spade_config("model.num_upsampling_layers=most", "model.fit_size=false",
                                     size=128)).size_multiple() == 128


def test_generator_output_depends_on_the_layout():
    method = build_method(spade_config("model.init_gain=1.0")).eval()
    a, b = make_batch(1, seed=0), make_batch(1, seed=1)
    out_a = method.generate(a["label"], instance=a["instance"])
    assert not torch.allclose(out_a, method.generate(b["label"], instance=b["instance"]))
    assert torch.equal(out_a, method.generate(a["label"], instance=a["instance"]))   # deterministic


# ------------------------------------------------------------------------------- VAE, style


def vae_method() -> GauGAN:
    torch.manual_seed(0)
    return build_method(spade_config("model.use_vae=true", "model.z_dim=16",
                                     "model.init_gain=1.0"))


def test_encoder_structure_and_reparameterization():
    enc = ConvEncoder(width=4, z_dim=16)
    layers = [enc.layer1, enc.layer2, enc.layer3, enc.layer4, enc.layer5, enc.layer6]
    assert [layer[0].weight_orig.shape[0] for layer in layers] == [4, 8, 16, 32, 32, 32]
    assert enc.layer1[0].bias is None             # normalized: no bias
    mu, logvar = enc(torch.rand(3, 3, 64, 128) * 2 - 1)        # resized to 256x256 inside
    assert mu.shape == logvar.shape == (3, 16)
    mu, logvar = torch.randn(2, 16), torch.randn(2, 16)
    eps = torch.randn(2, 16)
    torch.testing.assert_close(reparameterize(mu, logvar, eps), eps * torch.exp(0.5 * logvar) + mu)


def test_multimodal_synthesis_different_z_different_images():
    method = vae_method().eval()
    batch = make_batch(1)
    torch.manual_seed(1)
    a = method.generate(batch["label"], instance=batch["instance"])
    torch.manual_seed(2)
    b = method.generate(batch["label"], instance=batch["instance"])
    assert (a - b).abs().mean() > 1e-3
    z = torch.randn(16)
    same_1 = method.generate(batch["label"], instance=batch["instance"], z=z)
    same_2 = method.generate(batch["label"], instance=batch["instance"], z=z[None])
    assert torch.equal(same_1, same_2)
    with pytest.raises(CondsynthError, match="z has shape"):
        method.generate(batch["label"], instance=batch["instance"], z=torch.randn(1, 15))


def test_style_guided_synthesis_uses_the_style_images_mu():
    method = vae_method().eval()
    batch = make_batch(2)
    style = torch.rand(1, 3, 48, 80) * 2 - 1
    mu, _ = method.encode_style(style)
    by_style = method.generate(batch["label"], instance=batch["instance"], style=style)
    by_mu = method.generate(batch["label"], instance=batch["instance"], z=mu)
    assert torch.equal(by_style, by_mu)                  # one style image for both layouts
    other = method.generate(batch["label"], instance=batch["instance"], style=-style)
    assert (other - by_style).abs().mean() > 1e-4
    # z overrides style
    z = torch.randn(2, 16)
    torch.testing.assert_close(
        method.generate(batch["label"], instance=batch["instance"], style=style, z=z),
        method.generate(batch["label"], instance=batch["instance"], z=z))
    # With a temperature, samples scatter around mu.
    method.config.model.style_temperature = 1.0
    torch.manual_seed(3)
    sampled = method.generate(batch["label"], instance=batch["instance"], style=style)
    assert not torch.equal(sampled, by_style)


def test_style_and_z_are_refused_without_the_vae():
    method = build_method(spade_config()).eval()
    batch = make_batch(1)
    with pytest.raises(CondsynthError, match="without the VAE"):
        method.generate(batch["label"], instance=batch["instance"], style=batch["image"])
    with pytest.raises(CondsynthError, match="without the VAE"):
        method.encode_style(batch["image"])


def test_vae_training_step_and_losses():
    method = vae_method()
    assert method.network_names == ("generator", "discriminator", "encoder")
    assert method.inference_networks == ("generator", "encoder")
    batch = make_batch(2)
    batch["eps"] = torch.zeros(2, 16)                    # injected noise: z = mu
    out = method.forward_generator(batch)
    torch.testing.assert_close(out["z"], out["mu"])
    losses = {**method.discriminator_step(batch, out), **method.generator_step(batch, out)}
    sum(losses.values()).backward()
    assert set(losses) == {"d_fake", "d_real", "g_gan", "g_feat", "g_kl"}
    expected_kl = 0.05 * -0.5 * torch.sum(1 + out["logvar"] - out["mu"] ** 2 - out["logvar"].exp())
    torch.testing.assert_close(losses["g_kl"], expected_kl)
    assert all(p.grad is not None for p in method.encoder.parameters())
    groups = method.parameter_groups()
    assert len(groups["generator"]) == (len(list(method.generator.parameters()))
                                        + len(list(method.encoder.parameters())))


def test_vae_run_saves_and_loads_the_encoder(tmp_path):
    method = vae_method()
    checkpoint.write_checkpoint(tmp_path, method.config, method.networks(), step=1)
    assert (tmp_path / "encoder.safetensors").is_file()
    loaded = load(tmp_path, device="cpu")
    style = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded.encode_style(style), method.eval().encode_style(style),
                               rtol=0, atol=0)


# ------------------------------------------------------------------------------- losses


def test_losses_follow_spade(tmp_path):
    vgg = tmp_path / "vgg.pth"
    torch.manual_seed(0)
    torch.save({f"features.{k}": v for k, v in vgg19_feature_layers().state_dict().items()}, vgg)
    method = build_method(spade_config("model.lambda_vgg=10", f"model.vgg_weights={vgg}"))
    batch = make_batch(2)
    out = method.forward_generator(batch)
    d = method.discriminator_step(batch, out)
    g = method.generator_step(batch, out)
    assert set(g) == {"g_gan", "g_feat", "g_vgg"} and set(d) == {"d_fake", "d_real"}
    # The VGG is built on the first G step, outside the saved networks and the module tree.
    assert method._vgg is not None
    assert not any("vgg" in k for k in method.state_dict())

    # Recompute the official formulas from one discriminator call on cat([fake, real]).
    with torch.no_grad():
        method.eval()       # no power iteration: the recomputation sees the same weights
        fake = out["fake"].detach()
        cond = out["condition"]
        pred = method.discriminator(torch.cat([torch.cat([cond, fake], 1),
                                               torch.cat([cond, batch["image"]], 1)]))
        mine_fake, mine_real = method._discriminate(method.discriminator, cond, fake,
                                                    batch["image"])
        d_fake = sum(torch.relu(1 + p[-1][:2]).mean() for p in pred) / 2
        d_real = sum(torch.relu(1 - p[-1][2:]).mean() for p in pred) / 2
        torch.testing.assert_close(method.discriminator_step(batch, out)["d_fake"], d_fake)
        torch.testing.assert_close(method.discriminator_step(batch, out)["d_real"], d_real)
        g_gan = sum(-p[-1][:2].mean() for p in pred) / 2
        feat = sum(10.0 / 2 * (f[:2] - f[2:]).abs().mean() for p in pred for f in p[:-1])
        g = method.generator_step(batch, out)
        torch.testing.assert_close(g["g_gan"], g_gan)
        torch.testing.assert_close(g["g_feat"], feat)
        assert len(mine_fake) == 2 and len(mine_fake[0]) == 5      # 4 layers + logits


@pytest.mark.parametrize("mode", ["hinge", "lsgan", "vanilla", "wgan"])
def test_gan_modes_train(mode):
    method = build_method(spade_config(f"model.gan_mode={mode}"))
    losses = train_step(method, make_batch(2))
    assert all(torch.isfinite(v) for v in losses.values())


def test_discriminator_runs_once_per_step_on_fake_and_real_together():
    method = build_method(spade_config())
    calls: list[int] = []
    method.discriminator.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    gen_calls: list[int] = []
    method.generator.register_forward_hook(lambda m, i, o: gen_calls.append(i[0].shape[0]))
    train_step(method, make_batch(2))
    assert calls == [4, 4] and gen_calls == [2]


def test_feature_matching_and_vgg_can_be_turned_off():
    method = build_method(spade_config("model.lambda_feat=0"))
    out_keys = set(train_step(method, make_batch(2)))
    assert out_keys == {"d_fake", "d_real", "g_gan"}


def test_optimization_defaults_are_the_official_ttur():
    d = GauGAN.optim_defaults
    assert (d.lr_g, d.lr_d, d.beta1, d.beta2) == (1e-4, 4e-4, 0.0, 0.9)


# ------------------------------------------------------------------------------- labels


def test_dontcare_label_gets_its_own_channel():
    config = spade_config("label.contain_dontcare_label=true")
    method = build_method(config)
    assert method.generator.fc.in_channels == NUM_CLASSES + 2   # classes + dont-care + edges
    batch = make_batch(2)
    batch["label"][:, :8] = 255
    cond = method.condition(batch)
    assert torch.equal(cond[:, NUM_CLASSES, :8], torch.ones(2, 8, 32))
    assert cond[:, :NUM_CLASSES, :8].sum() == 0
    losses = train_step(method, batch)
    assert all(torch.isfinite(v) for v in losses.values())


def test_without_labels_the_condition_is_the_source_image():
    """label.num_classes 0: image-to-image translation (SPADE#112 crashed on it)."""
    config = spade_config("label.num_classes=0", "label.source_channels=3", instance=False)
    method = build_method(config)
    assert method.generator.fc.in_channels == 3
    assert method.discriminator.discriminators[0].layers[0][0].in_channels == 6
    batch = make_batch(2)
    batch = {"source": batch["image"].flip(1), "image": batch["image"]}
    losses = train_step(method, batch)
    assert all(torch.isfinite(v) for v in losses.values())
    out = method.eval().generate(batch["source"])
    assert out.shape == (2, 3, 32, 32)


def test_instance_norm_variant_and_no_spectral_norm():
    # Instance norm needs more than one pixel: 64x64 gives the first blocks 2x2.
    method = build_method(spade_config("model.norm_g=instance", "model.spectral_g=false",
                                       "model.norm_d=batch", "model.spectral_d=false", size=64))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in method.generator.modules())
    assert "conv_0.weight" in dict(method.generator.head_0.named_parameters())
    losses = train_step(method, make_batch(2, 64, 64))
    assert all(torch.isfinite(v) for v in losses.values())


def test_sync_batch_norm_conversion_covers_every_spade_norm():
    method = build_method(spade_config())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(method.generator)
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in converted.modules()) == 18
    assert not any(type(m) is nn.BatchNorm2d for m in converted.modules())


def test_bf16_autocast_training_and_channels_last_inference():
    method = build_method(spade_config("model.init_gain=1.0"))
    batch = make_batch(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = train_step(method, batch)
    assert all(torch.isfinite(v.float()) for v in losses.values())
    method.eval()
    reference = method.generate(batch["label"], instance=batch["instance"])
    method.to(memory_format=torch.channels_last)
    fast = method.generate(batch["label"], instance=batch["instance"])
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = method.generate(batch["label"], instance=batch["instance"])
    assert (low.float() - reference).abs().mean() < 0.05


# ------------------------------------------------------------------------------- presets


@pytest.mark.parametrize("name,grid,channels", [("spade_cityscapes", (4, 8), 36),
                                                ("spade_ade20k", (8, 8), 151),
                                                ("spade_cocostuff", (8, 8), 184)])
def test_official_presets_load(name, grid, channels):
    config = load_preset(name)
    m = config.model
    assert config.method == "spade" and config.condition.input_channels == channels
    num_up = {"normal": 5, "more": 6}[m.num_upsampling_layers]
    assert latent_grid(config.data.crop_size, config.data.aspect_ratio, num_up) == grid
    assert (m.ngf, m.ndf, m.norm_g, m.spectral_g, m.gan_mode, m.lambda_vgg) == \
        (64, 64, "sync_batch", True, "hinge", 10.0)
    assert (config.train.lr_g, config.train.lr_d, config.train.beta1, config.train.beta2) == \
        (1e-4, 4e-4, 0.0, 0.9)


def test_cpu_preset_builds_and_steps():
    config = load_preset("spade_cpu", ["label.num_classes=11"])
    method = build_method(config)
    batch = make_batch(2, 128, 128, classes=11)
    losses = train_step(method, batch)
    assert set(losses) == {"d_fake", "d_real", "g_gan", "g_feat"}


def test_cpu_style_preset_trains_the_encoder_with_a_light_kl():
    config = load_preset("spade_cpu_style", ["label.num_classes=11"])
    assert config.model.use_vae and config.model.lambda_kld == 0.005
    method = build_method(config)
    batch = make_batch(2, 128, 128, classes=11)
    losses = train_step(method, batch)
    assert set(losses) == {"d_fake", "d_real", "g_gan", "g_feat", "g_kl"}
