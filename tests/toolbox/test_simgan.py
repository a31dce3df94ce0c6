"""SimGAN: the local adversarial loss, each self-regularization ψ, the history of refined images
(its semantics and its exact resume), the networks' shapes and the pre-training schedule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from condsynth import checkpoint
from condsynth.errors import ConfigError
from condsynth.methods.base import Phase
from condsynth.methods.simgan import (
    REAL,
    REFINED,
    LocalDiscriminator,
    Refiner,
    image_gradients,
    load_psi_network,
    mix_with_history,
    patch_cross_entropy,
    psi_features,
    self_regularization,
    update_history,
)
from condsynth.registry import build_method
from condsynth.train import make_optimizers, prepare_config, resolve_optimizers, train, train_step
from tests.tiny import tiny_batch, tiny_config

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- networks


@pytest.mark.parametrize(("channels", "height", "width"), [(1, 35, 55), (3, 28, 28), (4, 9, 13)])
def test_refiner_keeps_any_size_and_channel_count(channels, height, width):
    refiner = Refiner(channels, channels, channels=8, blocks=2)
    out = refiner(torch.randn(2, channels, height, width))
    assert out.shape == (2, channels, height, width)
    assert Refiner(1, 3, channels=8, blocks=0)(torch.randn(1, 1, 5, 7)).shape == (1, 3, 5, 7)


def test_refiner_layers_follow_the_appendix():
    refiner = Refiner(1, 1)                          # the paper's widths: 64 maps, 4 blocks
    assert refiner.input.kernel_size == (3, 3) and refiner.input.out_channels == 64
    assert len(refiner.blocks) == 4
    assert all(b.conv1.kernel_size == (3, 3) and b.conv2.kernel_size == (3, 3)
               for b in refiner.blocks)
    assert refiner.output.kernel_size == (1, 1) and refiner.output.out_channels == 1


def test_local_discriminator_gives_one_softmax_per_patch():
    d = LocalDiscriminator(1, [96, 64, 32, 32])
    convs = [m for m in d.layers if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 64, 32, 32, 2]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3), (3, 3), (1, 1), (1, 1)]
    assert [c.stride for c in convs][:2] == [(2, 2), (2, 2)]
    assert d(torch.randn(2, 1, 28, 28)).shape == (2, 2, 7, 7)
    assert d(torch.randn(1, 1, 35, 55)).shape == (1, 2, 9, 14)
    with pytest.raises(ConfigError, match="4 positive"):
        LocalDiscriminator(1, [8, 8])


# ----------------------------------------------------------------------------- losses


def test_patch_cross_entropy_matches_a_hand_computation():
    # One image, two patches: logits (real, refined) = (2, 0) and (0, 1).
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])               # (1, 2, 1, 2)
    # -log softmax: patch 1 as real = log(1 + e^-2), patch 2 as real = log(1 + e^1).
    real_1, real_2 = math.log(1 + math.exp(-2)), math.log(1 + math.exp(1))
    fake_1, fake_2 = math.log(1 + math.exp(2)), math.log(1 + math.exp(-1))
    assert patch_cross_entropy(logits, REAL).item() == pytest.approx((real_1 + real_2) / 2)
    assert patch_cross_entropy(logits, REFINED).item() == pytest.approx((fake_1 + fake_2) / 2)
    assert patch_cross_entropy(logits, REAL, "sum").item() == pytest.approx(real_1 + real_2)
    two = torch.cat([logits, logits.flip(1)])       # second image: the classes swapped
    assert patch_cross_entropy(two, REAL, "sum").item() == pytest.approx(
        (real_1 + real_2 + fake_1 + fake_2) / 2)    # summed over patches, mean over images


def test_image_gradients_by_hand():
    x = torch.tensor([[[[1.0, 2.0, 4.0], [0.0, 0.0, 1.0]]]])            # (1, 1, 2, 3)
    # dx: rows (1, 2), (0, 1); dy: (-1, -2, -3)
    assert image_gradients(x).tolist() == [[1.0, 2.0, 0.0, 1.0, -1.0, -2.0, -3.0]]


def test_each_psi_by_hand(tmp_path):
    x = torch.arange(32.0).reshape(1, 2, 4, 4) / 32
    assert torch.equal(psi_features(x, "identity"), x)
    assert torch.allclose(psi_features(x, "mean"), (x[:, :1] + x[:, 1:]) / 2)
    down = psi_features(x, "downsample", factor=2)
    assert down.shape == (1, 2, 2, 2)
    assert down[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4 / 32)
    assert torch.equal(psi_features(x, "gradients"), image_gradients(x))
    # A frozen network from a torch.export file: its output is ψ.
    net = torch.nn.Conv2d(2, 3, 1)
    path = tmp_path / "psi.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(net, (torch.zeros(2, 2, 4, 4),),
                                          dynamic_shapes=({0: batch},)), path)
    frozen = load_psi_network(path)
    assert torch.allclose(psi_features(x, "network", network=frozen), net(x), atol=1e-6)
    assert not any(p.requires_grad for p in frozen.parameters())
    with pytest.raises(ConfigError, match="dynamic_shapes"):         # exported at 4x4 only
        psi_features(torch.zeros(1, 2, 8, 8), "network", network=frozen)
    with pytest.raises(ConfigError, match="not found"):
        load_psi_network(tmp_path / "missing.pt2")


@pytest.mark.parametrize("psi", ["identity", "mean", "gradients", "downsample"])
def test_self_regularization_is_lambda_times_the_mean_l1_of_psi(psi):
    synthetic = torch.rand(2, 3, 8, 8) * 2 - 1
    refined = (synthetic + 0.1 * torch.randn_like(synthetic)).requires_grad_(True)
    loss = self_regularization(refined, synthetic, psi, 0.5, factor=2)
    expected = 0.5 * (psi_features(refined, psi, 2) - psi_features(synthetic, psi, 2)).abs().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert self_regularization(synthetic, synthetic, psi, 0.5, factor=2).item() == 0
    loss.backward()
    assert refined.grad is not None and refined.grad.abs().sum() > 0


def test_self_regularization_through_a_network_trains_only_the_refiner(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    path = tmp_path / "psi.pt2"
    dims = ({0: torch.export.Dim("batch")},)
    torch.export.save(torch.export.export(net, (torch.zeros(2, 1, 32, 32),),
                                          dynamic_shapes=dims), path)
    config = tiny_config("simgan", extra=["model.psi=network", f"model.psi_network={path}",
                                          "data.channels=1"])
    method = build_method(config)
    batch = tiny_batch(config)
    terms = method.phase_losses(Phase("self_regularization", "generator"), batch, {})
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in method.generator.parameters())
    frozen = list(method._psi[0].parameters())
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    trained = {id(p) for group in method.parameter_groups().values() for p in group}
    assert not trained & {id(p) for p in frozen}


def test_psi_that_compares_pixels_needs_equal_channels():
    with pytest.raises(ConfigError, match="model.psi=mean"):
        build_method(tiny_config("simgan", extra=["model.psi=identity"]))   # 1 → 3 channels
    with pytest.raises(ConfigError, match="psi_network"):
        build_method(tiny_config("simgan", extra=["model.psi=network",
                                                  "condition.image_channels=3"]))


# ----------------------------------------------------------------------------- history


def test_history_is_filled_then_half_replaced():
    torch.manual_seed(0)
    history = torch.zeros(0, 1, 1, 1)
    first = torch.arange(4.0).reshape(4, 1, 1, 1)
    history = update_history(history, first, capacity=6)
    assert history.flatten().tolist() == [0, 1, 2, 3]                   # appended
    history = update_history(history, first + 10, capacity=6)
    assert history.flatten().tolist() == [0, 1, 2, 3, 10, 11]           # up to the capacity
    before = history.clone()
    current = torch.arange(100.0, 104.0).reshape(4, 1, 1, 1)
    history = update_history(history, current, capacity=6)
    changed = (history != before).flatten()
    assert int(changed.sum()) == 2                                      # b/2 entries replaced
    assert set(history.flatten()[changed].tolist()) <= set(current.flatten().tolist())
    assert len(set(history.flatten()[changed].tolist())) == 2           # distinct images
    assert update_history(history, current, capacity=0) is history      # no history kept
    with pytest.raises(ConfigError, match="one image size"):
        update_history(history, torch.zeros(4, 1, 2, 2), capacity=6)


def test_half_of_the_discriminator_batch_comes_from_the_history():
    current = torch.arange(4.0).reshape(4, 1, 1, 1)
    assert torch.equal(mix_with_history(current, torch.zeros(0, 1, 1, 1)), current)
    assert torch.equal(mix_with_history(current, torch.full((1, 1, 1, 1), 9.0)), current)
    history = torch.arange(50.0, 60.0).reshape(10, 1, 1, 1)
    torch.manual_seed(1)
    mixed = mix_with_history(current, history).flatten().tolist()
    assert mixed[:2] == [0, 1]                                           # b - b/2 current
    assert all(50 <= v < 60 for v in mixed[2:]) and len(set(mixed[2:])) == 2


def test_discriminator_step_feeds_the_history():
    config = tiny_config("simgan")                                        # history_size 3
    method = build_method(config)
    batch = tiny_batch(config)
    phase = Phase("discriminator", "discriminator")
    method.phase_losses(phase, batch, {})
    assert method.history.shape == (2, 3, 32, 32)
    method.phase_losses(phase, batch, {})
    assert method.history.shape == (3, 3, 32, 32)                         # capacity reached
    with torch.no_grad():
        refined = method.generator(batch["source"])
    assert torch.equal(method.history[0], refined[0])


def write_unpaired(root, count=6, size=16):
    """``root/A`` labelled synthetic squares (dataset.json) and ``root/B`` real noise."""
    rng = np.random.default_rng(0)
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    labels = []
    for i in range(count):
        image = np.zeros((size, size), np.uint8)
        image[4:12, 2 + i % 3:10 + i % 3] = 200
        Image.fromarray(image).save(root / "A" / f"s{i}.png")
        labels.append([f"s{i}.png", i % 2])
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(
            root / "B" / f"r{i}.png")
    (root / "A" / "dataset.json").write_text(json.dumps({"labels": labels,
                                                         "classes": ["a", "b"]}))
    return root


def unpaired_config(root, steps=6):
    return prepare_config(tiny_config("simgan", extra=[
        f"data.root={root}", "data.channels=1", "data.load_size=16", "data.crop_size=16",
        "model.psi=identity", "model.history_size=5", f"train.max_steps={steps}",
        "train.checkpoint_every=100", "train.sample_every=100", "train.batch_size=4"]))


@pytest.mark.slow
def test_history_resumes_exactly(tmp_path):
    root = write_unpaired(tmp_path / "data")
    train(unpaired_config(root), tmp_path / "full", progress=False)
    train(unpaired_config(root), tmp_path / "split", progress=False, stop_at=2)
    middle = load_file(tmp_path / "split" / "method_state.safetensors")["history"]
    assert middle.shape == (4, 1, 16, 16)           # after one D step at batch 4
    resumed = train(checkpoint.read_config(tmp_path / "split"), tmp_path / "split", resume=True,
                    progress=False)
    assert resumed.step == 6
    full = load_file(tmp_path / "full" / "method_state.safetensors")["history"]
    split = load_file(tmp_path / "split" / "method_state.safetensors")["history"]
    assert full.shape == (5, 1, 16, 16)
    assert torch.equal(full, split)
    for name in ("generator", "discriminator"):
        a = load_file(tmp_path / "full" / f"{name}.safetensors")
        b = load_file(tmp_path / "split" / f"{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), name


# ----------------------------------------------------------------------------- schedule


def test_pretraining_phases_then_kg_refiner_steps_per_kd():
    config = tiny_config("simgan", extra=["model.pretrain_refiner_steps=3",
                                          "model.pretrain_discriminator_steps=2",
                                          "model.refiner_steps=5", "model.discriminator_steps=2"])
    method = build_method(config)

    def active(step):
        return [(p.name, p.repeats) for p in method.phases() if p.active(step)]

    assert active(0) == active(2) == [("self_regularization", 1)]
    assert active(3) == active(4) == [("discriminator", 1)]
    assert active(5) == active(100) == [("refiner", 5), ("discriminator", 2)]


def test_pretraining_steps_train_only_their_player():
    config = tiny_config("simgan", extra=["model.pretrain_refiner_steps=1",
                                          "model.pretrain_discriminator_steps=1"])
    torch.manual_seed(0)
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    batch = tiny_batch(config)

    def snapshot():
        return {k: v.clone() for k, v in method.state_dict().items()}

    def changed(before, prefix):
        return any(not torch.equal(v, before[k]) for k, v in method.state_dict().items()
                   if k.startswith(prefix))

    before = snapshot()
    losses = train_step(method, batch, optimizers, 0, "fp32", CPU)
    assert set(losses) == {"g_self_reg"}
    assert changed(before, "generator.") and not changed(before, "discriminator.")
    assert method.history.shape[0] == 0
    before = snapshot()
    losses = train_step(method, batch, optimizers, 1, "fp32", CPU)
    assert set(losses) == {"d_real", "d_refined"}
    assert changed(before, "discriminator.") and not changed(before, "generator.")
    before = snapshot()
    losses = train_step(method, batch, optimizers, 2, "fp32", CPU)
    assert set(losses) == {"g_local", "g_self_reg", "d_real", "d_refined"}
    assert changed(before, "discriminator.") and changed(before, "generator.")


def test_refiner_pretraining_approaches_the_identity():
    config = tiny_config("simgan", extra=["model.psi=mean", "train.lr_g=0.003"])
    torch.manual_seed(0)
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    batch = tiny_batch(config)
    first = train_step(method, batch, optimizers, 0, "fp32", CPU)["g_self_reg"].item()
    for _ in range(30):
        last = train_step(method, batch, optimizers, 0, "fp32", CPU)["g_self_reg"].item()
    assert last < first / 3
