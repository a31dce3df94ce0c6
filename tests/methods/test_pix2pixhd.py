"""pix2pixHD: networks, losses, staged training, instance features and looks, presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from condsynth import checkpoint
from condsynth.api import load
from condsynth.config import Config, apply_overrides
from condsynth.errors import CheckpointError, CondsynthError, ConfigError, DataError
from condsynth.losses import feature_matching_loss
from condsynth.methods.pix2pixhd import (
    FEATURES_FILE,
    Encoder,
    GlobalGenerator,
    LocalEnhancer,
    Pix2PixHD,
    init_from_global,
    instance_average,
)
from condsynth.methods.pix2pixhd_looks import compute_features, kmeans
from condsynth.presets import load_preset
from condsynth.registry import build_method, default_config, parse_config

NUM_CLASSES = 5


def hd_config(*overrides: str, use_instance: bool = True) -> Config:
    """A tiny pix2pixHD: 8 channels, 3 down-samplings, 1 residual block, no VGG."""
    raw = default_config("pix2pixhd").to_dict()
    raw["condition"].update(num_classes=NUM_CLASSES, use_instance=use_instance)
    base = ["model.ngf=8", "model.ndf=8", "model.n_downsample_global=3",
            "model.n_blocks_global=1", "model.n_blocks_local=1", "model.vgg_loss=false",
            "model.nef=4", "model.n_downsample_e=2"]
    return parse_config(apply_overrides(raw, base + list(overrides)))


def make_batch(size: int = 32, batch: int = 2, seed: int = 0) -> dict:
    """Labels in horizontal bands (upside down in the second image); the bands of classes 3
    and 4 are split into two instances, left and right."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(size).view(size, 1).expand(size, size)
    label = (rows * NUM_CLASSES // size).expand(batch, size, size).clone()
    label[1:] = label[1:].flip(1)
    side = (torch.arange(size) >= size // 2).long().view(1, 1, size)
    instance = torch.where(label >= 3, label * 1000 + side, label)
    return {"label": label, "instance": instance,
            "image": torch.rand(batch, 3, size, size, generator=g) * 2 - 1}


# ----------------------------------------------------------------------------- networks


def test_default_config_is_the_official_global_generator():
    cfg = default_config("pix2pixhd").model
    assert (cfg.ngf, cfg.n_downsample_global, cfg.n_blocks_global, cfg.n_local_enhancers) == (
        64, 4, 9, 0)
    assert (cfg.ndf, cfg.n_layers_d, cfg.num_d, cfg.gan_mode, cfg.lambda_feat) == (
        64, 3, 2, "lsgan", 10.0)


def test_global_generator_layers_and_shapes():
    g = GlobalGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1)
    convs = [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (6, 4, 7, 1), (4, 8, 3, 2), (8, 16, 3, 2), (16, 16, 3, 1), (16, 16, 3, 1),
        (16, 8, 3, 2), (8, 4, 3, 2), (4, 3, 7, 1)]
    assert all(c.output_padding == (1, 1) for c in convs if isinstance(c, torch.nn.ConvTranspose2d))
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in g.modules()) == 4
    norms = [m for m in g.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert norms and not any(n.affine or n.track_running_stats for n in norms)
    x = torch.randn(2, 6, 16, 24)
    y = g(x)
    assert y.shape == (2, 3, 16, 24) and y.abs().max() <= 1
    assert g.features(x).shape == (2, 4, 16, 24)


def test_local_enhancer_runs_g1_on_the_pooled_input_and_adds_its_features():
    torch.manual_seed(0)
    g = LocalEnhancer(5, 3, ngf=4, n_downsample_global=2, n_blocks_global=1,
                      n_local_enhancers=2, n_blocks_local=1)
    assert g.global_generator.to_image is None
    assert g.global_generator.stem[1].out_channels == 16            # ngf * 2**2
    assert [b.to_image is not None for b in g.branches] == [False, True]
    x = torch.randn(1, 5, 32, 32)
    seen = {}
    g.global_generator.register_forward_hook(lambda m, i, o: seen.update(g1_in=i[0], g1_out=o))
    out = g(x)
    assert out.shape == (1, 3, 32, 32)
    half = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    quarter = F.avg_pool2d(half, 3, stride=2, padding=1, count_include_pad=False)
    torch.testing.assert_close(seen["g1_in"], quarter, rtol=0, atol=0)
    # Recompose by hand: each branch adds the coarser features to its own down-sampled ones.
    coarse = seen["g1_out"]
    for branch, level in zip(g.branches, (half, x), strict=True):
        coarse = branch.upsample(branch.downsample(level) + coarse)
        if branch.to_image is not None:
            coarse = branch.to_image(coarse)
    torch.testing.assert_close(out, coarse, rtol=0, atol=0)


def test_instance_average_matches_a_naive_mean_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 7, requires_grad=True)
    ids = torch.randint(0, 4, (2, 6, 7)) * 1000 + torch.randint(0, 2, (2, 6, 7))
    y = instance_average(x, ids)
    expected = torch.empty_like(x)
    for b in range(2):
        for i in ids[b].unique():
            mask = ids[b] == i
            expected[b][:, mask] = x[b][:, mask].mean(1, keepdim=True)
    torch.testing.assert_close(y, expected)
    y[0, 1, 0, 0].backward()
    grad = x.grad[0, 1]
    mask = ids[0] == ids[0, 0, 0]
    torch.testing.assert_close(grad[mask], torch.full_like(grad[mask], 1.0 / mask.sum()))
    assert grad[~mask].abs().sum() == 0 and x.grad[1].abs().sum() == 0


def test_encoder_output_is_constant_per_instance():
    torch.manual_seed(0)
    e = Encoder(3, feat_num=3, nef=4, n_downsampling=2)
    batch = make_batch(size=16)
    f = e(batch["image"], batch["instance"])
    assert f.shape == (2, 3, 16, 16)
    for b in range(2):
        for i in batch["instance"][b].unique():
            values = f[b][:, batch["instance"][b] == i]
            assert torch.allclose(values, values[:, :1].expand_as(values), atol=1e-6)


def test_discriminator_is_the_official_multiscale_patchgan():
    method = build_method(hd_config("model.num_d=3", "model.n_layers_d=2"))
    d = method.discriminator
    assert len(d.discriminators) == 3
    convs = [m for m in d.discriminators[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.stride[0], c.padding[0], c.bias is not None) for c in convs] == [
        (2, 2, True), (2, 2, True), (1, 2, True), (1, 2, True)]
    assert convs[0].in_channels == NUM_CLASSES + 1 + 3 and convs[-1].out_channels == 1


def test_size_multiple_and_a_clear_error_for_other_sizes():
    method = build_method(hd_config("model.n_local_enhancers=1"))
    assert method.size_multiple() == 16
    batch = make_batch(size=24)
    with pytest.raises(DataError, match="not a multiple of 16"):
        method.generate(batch["label"], instance=batch["instance"])


def test_config_errors():
    with pytest.raises(ConfigError, match="instance maps"):
        build_method(hd_config("model.instance_feat=true", use_instance=False))
    with pytest.raises(ConfigError):
        hd_config("model.gan_mode=hinge")


# ----------------------------------------------------------------------------- losses


def _count_forwards(module: torch.nn.Module) -> list[bool]:
    calls: list[bool] = []
    module.register_forward_hook(lambda m, i, o: calls.append(torch.is_grad_enabled()))
    return calls


def test_steps_report_the_official_terms_with_one_d_forward_each():
    torch.manual_seed(0)
    method = build_method(hd_config())
    calls = _count_forwards(method.discriminator)
    batch = make_batch()
    out = method.forward_generator(batch)
    d = method.discriminator_step(batch, out)
    assert set(d) == {"d_fake", "d_real"} and calls == [True]
    g = method.generator_step(batch, out)
    assert set(g) == {"g_gan", "g_feat"}
    assert calls == [True, True, False]            # fake with graph, real as a target only

    # The terms as the official computes them, with separate D forwards.
    cond = out["condition"]
    fake_pred = method.discriminator(torch.cat([cond, out["fake"]], 1))
    real_pred = method.discriminator(torch.cat([cond, batch["image"]], 1))
    lsgan_fake = sum(F.mse_loss(p[-1], torch.zeros_like(p[-1])) for p in fake_pred)
    lsgan_real = sum(F.mse_loss(p[-1], torch.ones_like(p[-1])) for p in real_pred)
    torch.testing.assert_close(d["d_fake"], 0.5 * lsgan_fake)
    torch.testing.assert_close(d["d_real"], 0.5 * lsgan_real)
    torch.testing.assert_close(g["g_gan"], sum(F.mse_loss(p[-1], torch.ones_like(p[-1]))
                                               for p in fake_pred))
    feat = sum(0.5 * 1.0 * 10.0 * F.l1_loss(f, r)                 # 1/num_D * 4/(3+1) * lambda
               for fs, rs in zip(fake_pred, real_pred, strict=True)
               for f, r in zip(fs[:-1], rs[:-1], strict=True))
    torch.testing.assert_close(g["g_feat"], feat)
    torch.testing.assert_close(g["g_feat"], 10.0 * feature_matching_loss(
        fake_pred, real_pred, layer_weight=1.0, scale_weight=0.5))


def test_losses_are_switchable_and_vanilla_works():
    method = build_method(hd_config("model.feature_matching=false", "model.gan_mode=vanilla"))
    batch = make_batch()
    out = method.forward_generator(batch)
    d = method.discriminator_step(batch, out)
    g = method.generator_step(batch, out)
    assert set(g) == {"g_gan"} and all(torch.isfinite(v) for v in [*d.values(), *g.values()])


def test_vgg_is_built_only_by_the_generator_step(tmp_path):
    missing = tmp_path / "nope.pth"
    method = build_method(hd_config("model.vgg_loss=true", f"model.vgg_weights={missing}"))
    batch = make_batch()
    method.generate(batch["label"], instance=batch["instance"])             # inference needs no VGG
    out = method.forward_generator(batch)
    method.discriminator_step(batch, out)
    with pytest.raises(CheckpointError, match="nope.pth"):
        method.generator_step(batch, out)


@pytest.mark.parity
def test_vgg_term_uses_lambda_feat(official_fixtures):
    vgg = str(official_fixtures / "vgg19-features.pth")
    method = build_method(hd_config("model.vgg_loss=true", f"model.vgg_weights={vgg}",
                                    "model.lambda_feat=3.0"))
    batch = make_batch()
    out = method.forward_generator(batch)
    g = method.generator_step(batch, out)
    torch.testing.assert_close(g["g_vgg"], 3.0 * method._vgg[0](out["fake"], batch["image"]))
    assert "vgg" not in " ".join(method.state_dict())              # never saved


def test_bf16_autocast_and_channels_last():
    torch.manual_seed(0)
    method = build_method(hd_config("model.n_local_enhancers=1", "model.instance_feat=true"))
    batch = make_batch()
    batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    method = method.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method.forward_generator(batch)
        losses = {**method.discriminator_step(batch, out), **method.generator_step(batch, out)}
    assert out["fake"].shape == (2, 3, 32, 32)
    assert all(torch.isfinite(v.float()) for v in losses.values())


# ----------------------------------------------------------------------------- staged training


def test_niter_fix_global_trains_only_the_outermost_enhancer():
    torch.manual_seed(0)
    method = build_method(hd_config("model.n_local_enhancers=2", "model.niter_fix_global=2",
                                    "model.ngf=4", "model.n_downsample_global=2"))
    g = method.generator
    opt = torch.optim.Adam(method.parameter_groups()["generator"], lr=1e-2)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    batch = make_batch()
    method.on_step(0, 10)
    assert not any(p.requires_grad for p in g.global_generator.parameters())
    assert not any(p.requires_grad for p in g.branches[0].parameters())
    assert all(p.requires_grad for p in g.branches[1].parameters())
    out = method.forward_generator(batch)
    opt.zero_grad()
    sum(method.generator_step(batch, out).values()).backward()
    opt.step()
    after = g.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("branches.1.") for k in changed)
    method.on_step(1, 10)
    assert not any(p.requires_grad for p in g.global_generator.parameters())
    method.on_step(2, 10)
    assert all(p.requires_grad for p in g.parameters())


def test_init_from_global_copies_g1_and_discriminators_by_resolution(tmp_path):
    torch.manual_seed(0)
    global_config = hd_config("model.ngf=8", "model.num_d=2")
    global_method = build_method(global_config)
    checkpoint.write_checkpoint(tmp_path / "global", global_config, global_method.networks(), 5)
    local = build_method(hd_config("model.ngf=4", "model.n_local_enhancers=1", "model.num_d=3"))
    copied = init_from_global(local, tmp_path / "global")
    assert copied == ["generator.global_generator", "discriminator.discriminators.1",
                      "discriminator.discriminators.2"]
    ours = local.generator.global_generator.state_dict()
    theirs = global_method.generator.state_dict()
    assert set(theirs) - set(ours) == {"to_image.1.weight", "to_image.1.bias"}
    assert all(torch.equal(v, theirs[k]) for k, v in ours.items())
    for d in (0, 1):
        a = global_method.discriminator.discriminators[d].state_dict()
        b = local.discriminator.discriminators[d + 1].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    wrong = build_method(hd_config("model.ngf=8", "model.n_local_enhancers=1"))
    with pytest.raises(CheckpointError, match="ngf 8 .global run. vs 16"):
        init_from_global(wrong, tmp_path / "global")


# ----------------------------------------------------------------------------- features, looks


def test_kmeans_is_deterministic_and_finds_separated_clusters():
    rng = np.random.default_rng(0)
    true = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 4.0]])
    points = np.concatenate([c + 0.1 * rng.standard_normal((30, 2)) for c in true])
    a, b = kmeans(points, 3, seed=1), kmeans(points[::-1], 3, seed=1)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, true[np.lexsort(true.T[::-1])], atol=0.1)
    assert kmeans(points[:2], 5).shape == (2, 2)                   # fewer points than clusters


def _features_run(tmp_path: Path) -> tuple[Path, Config]:
    torch.manual_seed(0)
    config = hd_config("model.instance_feat=true", "model.n_clusters=2")
    method = build_method(config)
    run = tmp_path / "run"
    checkpoint.write_checkpoint(run, config, method.networks(), 1)
    return run, config


def test_compute_features_and_choosing_looks(tmp_path):
    run, config = _features_run(tmp_path)
    items = [{k: v[i] for k, v in make_batch(seed=s).items()} for s in range(3) for i in range(2)]
    path = compute_features(run, items, device="cpu")
    assert path == run / FEATURES_FILE
    method = load(run, device="cpu")
    centres = method.cluster_centres()
    assert set(centres) == set(range(NUM_CLASSES))               # every class has instances
    assert all(c.shape[1] == 3 and 1 <= len(c) <= 2 for c in centres.values())

    batch = make_batch(batch=1)
    label, instance = batch["label"], batch["instance"]
    chosen = method.feature_map(label, instance, looks={3: 1, 4: 0}, instance_looks={3001: 0},
                                seed=0)
    assert chosen.shape == (1, 3, 32, 32)
    for i, look in [(3000, 1), (3001, 0), (4000, 0), (4001, 0)]:
        pixels = chosen[0][:, instance[0] == i]
        expected = torch.from_numpy(centres[i // 1000][look]).view(3, 1)
        torch.testing.assert_close(pixels, expected.expand_as(pixels))
    a = method.feature_map(label, instance, seed=1)
    torch.testing.assert_close(a, method.feature_map(label, instance, seed=1))
    per_class = method.feature_map(label, instance, seed=1, random_per="class")
    assert torch.equal(per_class[0][:, instance[0] == 3000][:, :1],
                       per_class[0][:, instance[0] == 3001][:, :1])
    with pytest.raises(CondsynthError, match="look 7 for class 3"):
        method.feature_map(label, instance, looks={3: 7})

    # One label map, many images: the looks steer the generator; z is the feature map.
    one = method.generate(label, instance=instance,
                          z=method.feature_map(label, instance, looks={3: 0}))
    two = method.generate(label, instance=instance,
                          z=method.feature_map(label, instance, looks={3: 1}))
    assert (one - two).abs().max() > 1e-4
    torch.manual_seed(3)                                            # a random cluster each,
    random_look = method.generate(label, instance=instance)                  # reproducible by seed
    torch.manual_seed(3)
    assert torch.equal(random_look, method.generate(label, instance=instance))
    style = method.generate(label, instance=instance, style=batch["image"])
    encoded = method.encoder(batch["image"], instance)
    cond = method.condition(batch)
    torch.testing.assert_close(style, method.generator(torch.cat([cond, encoded], 1)))


def test_features_survive_a_checkpoint_and_are_needed_for_random_looks(tmp_path):
    run, config = _features_run(tmp_path)
    method = load(run, device="cpu")
    batch = make_batch(batch=1)
    with pytest.raises(CondsynthError, match="condsynth features"):
        method.feature_map(batch["label"], batch["instance"])
    with pytest.warns(UserWarning, match="no clustered features"):
        neutral = method.generate(batch["label"], instance=batch["instance"])
    zeros = torch.zeros(1, 3, 32, 32)
    torch.testing.assert_close(neutral, method.generate(batch["label"],
                                                        instance=batch["instance"], z=zeros))
    method.set_cluster_centres({3: np.ones((2, 3)), 0: np.zeros((1, 3))})
    checkpoint.write_checkpoint(tmp_path / "copy", config, method.networks(), 2,
                                extra_files=method.extra_files())
    again = load(tmp_path / "copy", device="cpu").cluster_centres()
    assert set(again) == {0, 3} and np.array_equal(again[3], np.ones((2, 3), np.float32))


def test_compute_features_reads_a_dataset_folder(tmp_path, scenes):
    from condsynth.data.layouts import detect_num_classes

    raw = default_config("pix2pixhd").to_dict()
    raw["condition"].update(num_classes=detect_num_classes(scenes, "auto"), use_instance=True)
    raw["data"].update(root=str(scenes), load_size=32, crop_size=32)
    config = parse_config(apply_overrides(raw, [
        "model.ngf=4", "model.ndf=4", "model.n_downsample_global=2", "model.n_blocks_global=1",
        "model.vgg_loss=false", "model.instance_feat=true", "model.nef=4",
        "model.n_downsample_e=2", "model.n_clusters=3"]))
    method = build_method(config)
    checkpoint.write_checkpoint(tmp_path / "run", config, method.networks(), 1)
    compute_features(tmp_path / "run", scenes, device="cpu")
    centres = load(tmp_path / "run", device="cpu").cluster_centres()
    assert centres and all(1 <= len(c) <= 3 for c in centres.values())


def test_style_needs_an_encoder():
    method = build_method(hd_config())
    batch = make_batch()
    with pytest.raises(CondsynthError, match="no feature encoder"):
        method.generate(batch["label"], instance=batch["instance"], style=batch["image"])
    with pytest.raises(CondsynthError, match="no feature encoder"):
        method.feature_map(batch["label"], batch["instance"])


@pytest.mark.filterwarnings("ignore:this pix2pixHD run has no clustered features")
def test_training_and_resuming_a_features_run(tmp_path, scenes):
    from condsynth.data.layouts import detect_num_classes
    from condsynth.train import train

    raw = default_config("pix2pixhd").to_dict()
    raw["condition"].update(num_classes=detect_num_classes(scenes, "auto"), use_instance=True)
    raw["data"].update(root=str(scenes), load_size=32, crop_size=32)
    raw["train"].update(max_steps=2, batch_size=2, checkpoint_every=1, sample_every=2,
                        num_samples=2, tensorboard=False)
    config = parse_config(apply_overrides(raw, [
        "model.ngf=4", "model.ndf=4", "model.n_downsample_global=2", "model.n_blocks_global=1",
        "model.vgg_loss=false", "model.instance_feat=true", "model.nef=4",
        "model.n_downsample_e=2", "model.n_local_enhancers=1", "model.niter_fix_global=1"]))
    run = tmp_path / "run"
    train(config, run, stop_at=1, progress=False)
    result = train(config, run, resume=True, progress=False)
    assert result.step == 2
    assert checkpoint.has_network(run, "encoder")
    assert isinstance(load(run, device="cpu"), Pix2PixHD)


# ----------------------------------------------------------------------------- presets


@pytest.mark.parametrize("name", ["pix2pixhd_label2city_512p", "pix2pixhd_label2city_1024p",
                                  "pix2pixhd_cpu"])
def test_presets_load_and_build(name):
    overrides = ["label.num_classes=11"] if name == "pix2pixhd_cpu" else []
    config = load_preset(name, overrides)
    assert config.method == "pix2pixhd"
    method = build_method(config)
    if name.endswith("1024p"):
        assert isinstance(method.generator, LocalEnhancer) and config.model.num_d == 3
        assert method.generator.global_generator.stem[1].out_channels == 64
        assert config.data.preprocess == "none"
    if name.endswith("512p"):
        assert isinstance(method.generator, GlobalGenerator)
        assert config.data.preprocess == "scale_width" and config.data.load_size == 1024
