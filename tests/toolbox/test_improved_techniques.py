"""The Improved-GAN techniques against hand computations: feature matching, one-sided label
smoothing, historical averaging, the K+1 losses, minibatch discrimination, virtual batch norm,
weight normalization with its data-dependent initialization, Gaussian noise; and each
technique switched on in DCGAN trains and resumes."""

from __future__ import annotations

import math

import pytest
import torch

from condsynth.improved_losses import (
    batch_mean_matching,
    d_smoothed_loss,
    historical_average_penalty,
    historical_average_step,
    kplus1_generator_loss,
    kplus1_labeled_loss,
    kplus1_unlabeled_loss,
)
from condsynth.layers.improved import (
    GaussianNoise,
    MinibatchDiscrimination,
    VirtualBatchNorm,
    WeightNorm,
    data_dependent_init,
    flat_parameters,
    load_flat_parameters,
)
from condsynth.registry import build_method
from condsynth.train import make_optimizers, resolve_optimizers, train_step
from tests.tiny import tiny_batch, tiny_config

CPU = torch.device("cpu")


def test_feature_matching_l1_and_l2_of_batch_means():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])           # means (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)   # means (1, 1)
    assert batch_mean_matching(real, fake, "l1").item() == pytest.approx((1 + 2) / 2)
    assert batch_mean_matching(real, fake, "l2").item() == pytest.approx((1 + 4) / 2)
    batch_mean_matching(real, fake, "l2").backward()
    # d/d fake_ij of mean_j (m_real - m_fake)^2 = -2 (m_real - m_fake)_j / 2 / N
    assert torch.allclose(fake.grad, torch.tensor([[-0.5, -1.0], [-0.5, -1.0]]))


def test_one_sided_label_smoothing():
    logit = torch.tensor([math.log(3.0)])                     # sigmoid = 0.75
    real, fake = d_smoothed_loss(logit, logit, real_target=0.9)
    assert real.item() == pytest.approx(-(0.9 * math.log(0.75) + 0.1 * math.log(0.25)))
    assert fake.item() == pytest.approx(-math.log(0.25))     # fake targets stay 0
    real, _ = d_smoothed_loss(logit, logit)
    assert real.item() == pytest.approx(-math.log(0.75))


def test_label_smoothing_of_the_adversarial_losses():
    from condsynth.errors import ConfigError
    from condsynth.losses import d_adversarial_loss

    logit = torch.tensor([math.log(3.0)])
    assert d_adversarial_loss(logit, True, "vanilla", 0.9).item() == pytest.approx(
        d_smoothed_loss(logit, logit, 0.9)[0].item())
    half = torch.tensor([0.5])
    assert d_adversarial_loss(half, True, "lsgan", 0.9).item() == pytest.approx(0.16)
    assert d_adversarial_loss(half, False, "lsgan", 0.9).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="hinge"):
        d_adversarial_loss(half, True, "hinge", 0.9)
    with pytest.raises(ConfigError, match="label_smoothing"):
        build_method(tiny_config("spade", extra=["model.label_smoothing=0.1"]))  # hinge


@pytest.mark.parametrize("name", ["pix2pix", "pix2pixhd", "spade"])
def test_label_smoothing_switch_of_the_image_to_image_methods(name):
    extra = ["model.gan_mode=vanilla"] if name == "spade" else []
    config = tiny_config(name, extra=[*extra, "model.label_smoothing=0.1"])
    plain = build_method(tiny_config(name, extra=extra))
    smoothed = build_method(config)
    smoothed.load_state_dict(plain.state_dict())
    plain.eval(), smoothed.eval()                       # no dropout: the same D inputs
    batch = tiny_batch(config)
    with torch.no_grad():
        out = plain.forward_generator(batch)
        a = plain.discriminator_step(batch, out)
        b = smoothed.discriminator_step(batch, out)
    assert torch.allclose(a["d_fake"], b["d_fake"])            # one-sided: fakes keep 0
    assert not torch.allclose(a["d_real"], b["d_real"])


def test_historical_average_penalty():
    theta = torch.tensor([1.0, 2.0])
    assert historical_average_penalty(theta, torch.tensor([0.0, 1.0])).item() == 2.0
    param = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    history, count = torch.zeros(2), torch.zeros((), dtype=torch.int64)
    assert historical_average_step([param], history, count).item() == 0.0   # mean of one
    with torch.no_grad():
        param.copy_(torch.tensor([3.0, 4.0]))
    penalty = historical_average_step([param], history, count)             # mean (2, 3)
    assert torch.equal(history, torch.tensor([2.0, 3.0])) and int(count) == 2
    assert penalty.item() == 2.0
    penalty.backward()
    assert torch.equal(param.grad, torch.tensor([2.0, 2.0]))               # 2 (theta - mean)


def test_kplus1_losses_as_the_official_code_writes_them():
    real = torch.tensor([[0.0, math.log(3.0)]])               # Z = 4, D(x) = 4/5
    fake = torch.tensor([[math.log(0.5), math.log(0.5)]])     # Z = 1, D = 1/2
    # Labelled: cross-entropy of class 1 among the K = 2 real classes.
    assert kplus1_labeled_loss(real, torch.tensor([1])).item() == pytest.approx(
        math.log(4 / 3))
    # Unlabelled: -0.5 log D(x) - 0.5 log(1 - D(G(z))) with D = Z / (Z + 1).
    expected = -0.5 * math.log(4 / 5) - 0.5 * math.log(1 / 2)
    assert kplus1_unlabeled_loss(real, fake).item() == pytest.approx(expected)
    assert kplus1_generator_loss(fake).item() == pytest.approx(-math.log(2.0))


def test_minibatch_discrimination_by_hand():
    layer = MinibatchDiscrimination(2, num_kernels=1, kernel_dim=2)
    with torch.no_grad():
        layer.theta.copy_(torch.eye(2)[:, None, :])          # T = identity (unit columns)
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 0.0]])
    out = layer(x)
    # L1 distances between rows: d01 = 3, d02 = 3, d12 = 4; a row's distance to itself is
    # left out; the bias starts at -1.
    e3, e4 = math.exp(-3), math.exp(-4)
    expected = torch.tensor([2 * e3, e3 + e4, e3 + e4]) - 1
    assert torch.allclose(out[:, :2], x)
    assert torch.allclose(out[:, 2], expected)


def test_virtual_batch_norm_by_hand():
    layer = VirtualBatchNorm(1, reference_size=2, eps=0.0)
    x = torch.tensor([[1.0], [3.0], [5.0]])                   # reference rows 1 and 3, then 5
    out = layer(x)
    # Reference: mean 2, mean of squares 5 → normalized to -1, 1. The example weighs 1/3:
    # mean = 5/3 + 2/3 * 2 = 3, mean of squares = 25/3 + 2/3 * 5 = 35/3, var = 8/3.
    assert torch.allclose(out[:2, 0], torch.tensor([-1.0, 1.0]))
    assert out[2, 0].item() == pytest.approx(2 / math.sqrt(8 / 3))
    # Spatial inputs: the example's own statistics are over its positions.
    maps = torch.randn(5, 3, 4, 4)
    out = VirtualBatchNorm(3, reference_size=4, eps=0.0)(maps)
    ref_mean = maps[:4].mean((0, 2, 3))
    ref_sq = maps[:4].square().mean((0, 2, 3))
    own = maps[4]
    mean = own.mean((1, 2)) / 5 + 0.8 * ref_mean
    sq = own.square().mean((1, 2)) / 5 + 0.8 * ref_sq
    expected = (own - mean[:, None, None]) / (sq - mean.square()).sqrt()[:, None, None]
    assert torch.allclose(out[4], expected, atol=1e-5)


def test_virtual_batch_norm_needs_its_reference_rows():
    with pytest.raises(ValueError, match="reference"):
        VirtualBatchNorm(2, reference_size=4)(torch.randn(4, 2))


def test_weight_norm_and_its_data_dependent_initialization():
    torch.manual_seed(0)
    layer = WeightNorm("linear", 3, 2, train_scale=False, init_stdv=0.5)
    v = layer.direction.detach()
    # g = 1: W = V / sqrt(||V||^2 + 1e-6) (the official epsilon), row by row.
    assert torch.allclose(layer.weight(), v / (v.square().sum(1, keepdim=True) + 1e-6).sqrt())
    x = torch.randn(64, 3) * 4 + 1
    data_dependent_init(layer, x)
    out = layer(x)
    assert torch.allclose(out.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(out.std(0, unbiased=False), torch.full((2,), 0.5), atol=1e-5)
    assert "scale" in dict(layer.named_buffers())          # not trained: a saved buffer
    conv = WeightNorm("conv", 2, 4, kernel_size=3, padding=1)
    maps = torch.randn(8, 2, 6, 6)
    data_dependent_init(conv, maps)
    out = conv(maps)
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3), unbiased=False), torch.ones(4), atol=1e-4)
    kept = WeightNorm("deconv", 2, 3, kernel_size=4, stride=2, padding=1, data_init=False)
    data_dependent_init(kept, maps)
    assert torch.equal(kept.scale, torch.ones(3))
    assert kept(maps).shape == (8, 3, 12, 12)


def test_gaussian_noise_only_in_training():
    layer = GaussianNoise(0.5)
    x = torch.zeros(20000)
    assert torch.equal(layer.eval()(x), x)
    assert float(layer.train()(x).std()) == pytest.approx(0.5, rel=0.03)


def test_flat_parameters_round_trip():
    net = torch.nn.Linear(3, 2)
    flat = flat_parameters(net.parameters())
    assert flat.shape == (8,)
    load_flat_parameters(net.parameters(), torch.arange(8.0))
    assert torch.equal(net.bias, torch.tensor([6.0, 7.0]))


SWITCHES = {
    "feature_matching": ["model.feature_matching=l1"],
    "minibatch": ["model.minibatch_kernels=4", "model.minibatch_dim=3"],
    "historical_averaging": ["model.historical_averaging=0.01"],
    "label_smoothing": ["model.label_smoothing=0.1"],
    "virtual_batch_norm": ["model.generator_norm=virtual_batch", "model.vbn_reference_size=3"],
    "averaged_d": ["model.d_average_decay=0.9"],
}


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_dcgan_switch_trains(switch):
    config = tiny_config("dcgan", extra=SWITCHES[switch])
    torch.manual_seed(0)
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    losses = {}
    for step in range(2):
        losses = train_step(method, tiny_batch(config, seed=step), optimizers, step, "fp32", CPU)
    assert all(torch.isfinite(v) for v in losses.values())
    changed = [k for k, v in method.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("generator.") for k in changed)
    assert any(k.startswith("discriminator.") for k in changed)
    if switch == "feature_matching":
        assert "g_feature_matching" in losses and "g_gan" not in losses
    if switch == "historical_averaging":
        assert int(method.generator_history_count) == 2
        assert {"g_history", "d_history"} <= set(losses)
    if switch == "virtual_batch_norm":
        assert method.method_state()["vbn_reference"].shape == (3, 16)
        z = torch.randn(2, 16)
        method.eval()
        # Each sample depends on the reference batch and itself only, not on the batch.
        assert torch.allclose(method.generate(z=z)[:1], method.generate(z=z[:1]), atol=1e-5)
    if switch == "averaged_d":
        assert "d_average" in method.method_state()


def test_historical_average_is_the_mean_of_the_parameters_seen():
    config = tiny_config("dcgan", extra=SWITCHES["historical_averaging"])
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    seen = []
    for step in range(3):
        seen.append(flat_parameters(method.discriminator.parameters()))
        train_step(method, tiny_batch(config, seed=step), optimizers, step, "fp32", CPU)
    assert torch.allclose(method.discriminator_history, torch.stack(seen).mean(0), atol=1e-6)


def test_averaged_d_starts_at_zero_and_follows_the_official_rate():
    config = tiny_config("dcgan", extra=["model.d_average_decay=0.9"])
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    first = flat_parameters(method.discriminator.parameters())
    train_step(method, tiny_batch(config), optimizers, 0, "fp32", CPU)
    assert torch.allclose(method.d_average, 0.1 * first)
    image = tiny_batch(config)["image"]
    method.eval()
    own = [p.detach().clone() for p in method.discriminator.parameters()]
    seen = []
    hook = method.discriminator.layers[0].register_forward_hook(
        lambda m, i, o: seen.append(m.weight.detach().clone()))
    averaged = method.discriminate(image)                 # the averaged D, hooks and all
    hook.remove()
    assert not torch.allclose(averaged, method.discriminator(image))
    assert torch.equal(seen[0], method.d_average[:seen[0].numel()].view_as(seen[0]))
    assert all(torch.equal(p, q) for p, q in zip(method.discriminator.parameters(), own,
                                                 strict=True))   # its own values are back
