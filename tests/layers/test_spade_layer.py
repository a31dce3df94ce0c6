"""The SPADE layer and the SPADE residual block (Park et al., 2019)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from condsynth.layers.spade import SPADE, SPADEResBlock, resize_nearest


def one_hot_map(batch: int, classes: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, classes, (batch, height, width), generator=g)
    return F.one_hot(label, classes).permute(0, 3, 1, 2).float()


def reference_spade(layer: SPADE, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
    """The paper's formula with two separate γ and β convolutions, as the official module."""
    normalized = layer.param_free_norm(x)
    segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
    actv = layer.mlp_shared(segmap)
    return normalized * (1 + layer.mlp_gamma(actv)) + layer.mlp_beta(actv)


@pytest.mark.parametrize("norm", ["instance", "batch", "sync_batch"])
def test_spade_matches_the_formula_with_separate_convolutions(norm):
    layer = SPADE(6, 4, norm, kernel_size=3, hidden=16).eval()
    for p in layer.parameters():             # random, not the init, so a swap would show
        nn.init.normal_(p, 0, 0.3)
    if norm != "instance":
        layer.param_free_norm.running_mean.normal_()
        layer.param_free_norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 6, 8, 12)
    segmap = one_hot_map(2, 4, 32, 48)       # finer than x: resized inside, nearest
    expected = reference_spade(layer, x, segmap)
    torch.testing.assert_close(layer(x, segmap), expected, rtol=0, atol=1e-5)
    actv = layer.mlp_shared(resize_nearest(segmap, (8, 12)))
    for grad in (True, False):                 # training: two convolutions; inference: fused
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(layer(x, segmap), expected, rtol=0, atol=1e-5)
            scale, shift = layer.modulation(resize_nearest(segmap, (8, 12)))
        torch.testing.assert_close(scale, 1 + layer.mlp_gamma(actv), rtol=0, atol=1e-5)
        torch.testing.assert_close(shift, layer.mlp_beta(actv), rtol=0, atol=1e-5)


def test_spade_gradients_reach_gamma_and_beta_separately():
    layer = SPADE(3, 2, "instance", hidden=8)
    x = torch.randn(1, 3, 4, 4)
    layer(x, one_hot_map(1, 2, 4, 4)).square().sum().backward()
    for p in (layer.mlp_gamma.weight, layer.mlp_beta.weight, layer.mlp_shared[0].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_fused_weights_are_kept_for_inference_and_follow_updates():
    layer = SPADE(3, 2, "instance", hidden=4).eval()
    x, segmap = torch.randn(1, 3, 4, 4), one_hot_map(1, 2, 4, 4)
    with torch.no_grad():
        layer(x, segmap)
        kept = layer.fused_gamma_beta._cached[1][0]
        layer(x, segmap)
        assert layer.fused_gamma_beta._cached[1][0] is kept          # no new concatenation
        layer.mlp_beta.weight.add_(1.0)                           # as an optimizer step would
        out = layer(x, segmap)
        torch.testing.assert_close(layer.fused_gamma_beta._cached[1][0][3:], layer.mlp_beta.weight)
        torch.testing.assert_close(out, reference_spade(layer, x, segmap), rtol=0, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer(x, segmap)
        assert layer.fused_gamma_beta._cached[1][0].dtype == torch.bfloat16
    layer.train()(x, segmap).sum().backward()              # training: the two convolutions
    assert layer.mlp_gamma.weight.grad is not None and layer.mlp_beta.weight.grad is not None
    assert copy.deepcopy(layer).fused_gamma_beta._cached is None   # (EMA copies the generator)


def test_a_fused_optimizer_step_reaches_inference():
    """The fused Adam kernel changes weights in place without bumping their version; the
    trainer's step marks them, so the inference cache does not serve the old weights."""
    from condsynth.train import make_optimizers, train_step

    class OneLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = SPADE(3, 2, "instance", hidden=4)

        def parameter_groups(self) -> dict:
            return {"only": list(self.parameters())}

        def phases(self) -> list:
            from condsynth.methods.base import Phase
            return [Phase("only", "only")]

        def phase_losses(self, phase, batch, cache) -> dict:
            return {"loss": self.layer(batch["x"], batch["segmap"]).square().mean()}

    model = OneLayer()
    x, segmap = torch.randn(1, 3, 4, 4), one_hot_map(1, 2, 4, 4)
    layer = model.layer.eval()
    with torch.no_grad():
        layer(x, segmap)                                          # caches the concatenation
    from condsynth.methods.base import OptimizerSpec
    optimizers = make_optimizers(model, {"only": OptimizerSpec(lr=0.1)}, torch.device("cpu"))
    assert optimizers["only"].param_groups[0]["fused"]
    model.train()
    train_step(model, {"x": x, "segmap": segmap}, optimizers, 0, "fp32", torch.device("cpu"))
    with torch.no_grad():
        out = layer.eval()(x, segmap)
        torch.testing.assert_close(out, reference_spade(layer, x, segmap), rtol=0, atol=1e-5)


def test_spade_parameter_names_are_the_official_ones():
    keys = set(SPADE(4, 3, "sync_batch", kernel_size=5, hidden=32).state_dict())
    assert keys == {
        "param_free_norm.running_mean", "param_free_norm.running_var",
        "param_free_norm.num_batches_tracked", "mlp_shared.0.weight", "mlp_shared.0.bias",
        "mlp_gamma.weight", "mlp_gamma.bias", "mlp_beta.weight", "mlp_beta.bias"}
    layer = SPADE(4, 3, "instance", kernel_size=5, hidden=32)
    assert layer.mlp_shared[0].weight.shape == (32, 3, 5, 5)
    assert layer.mlp_gamma.weight.shape == (4, 32, 5, 5)
    assert not any(k.startswith("param_free_norm") for k in layer.state_dict())


def test_param_free_norms():
    instance = SPADE(4, 3, "instance").param_free_norm
    assert isinstance(instance, nn.InstanceNorm2d) and not instance.affine
    for kind in ("batch", "sync_batch"):
        norm = SPADE(4, 3, kind).param_free_norm
        assert type(norm) is nn.BatchNorm2d and not norm.affine and norm.track_running_stats
    # Distributed training converts the synchronized kind; it must be a plain BatchNorm2d.
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(SPADE(4, 3, "sync_batch"))
    assert isinstance(converted.param_free_norm, nn.SyncBatchNorm)
    assert not converted.param_free_norm.affine
    with pytest.raises(ValueError, match="instance, batch or sync_batch"):
        SPADE(4, 3, "group")


def test_batch_norm_spade_uses_batch_statistics_in_training_and_running_ones_in_eval():
    layer = SPADE(3, 2, "batch", hidden=8)
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    segmap = one_hot_map(4, 2, 5, 5)
    layer.train()(x, segmap)
    torch.testing.assert_close(layer.param_free_norm.running_mean,
                               0.1 * x.mean(dim=(0, 2, 3)))
    layer.eval()
    normalized = (x - layer.param_free_norm.running_mean[None, :, None, None]) / torch.sqrt(
        layer.param_free_norm.running_var[None, :, None, None] + 1e-5)
    scale, shift = layer.modulation(segmap)
    torch.testing.assert_close(layer(x, segmap), normalized * scale + shift)


def test_resize_nearest_is_nearest_and_a_no_op_at_the_same_size():
    segmap = one_hot_map(1, 3, 8, 8)
    assert resize_nearest(segmap, (8, 8)) is segmap
    torch.testing.assert_close(resize_nearest(segmap, (4, 4)), segmap[:, :, ::2, ::2])


def test_res_block_structure():
    block = SPADEResBlock(16, 8, 5, norm="batch", spectral=True, hidden=8)
    assert block.learned_shortcut
    assert block.conv_0.weight_orig.shape == (8, 16, 3, 3)      # fmiddle = min(16, 8)
    assert block.conv_1.weight_orig.shape == (8, 8, 3, 3)
    assert block.conv_s.weight_orig.shape == (8, 16, 1, 1) and block.conv_s.bias is None
    assert block.norm_0.mlp_gamma.out_channels == 16 and block.norm_1.mlp_gamma.out_channels == 8
    assert block.norm_s.mlp_gamma.out_channels == 16
    keys = set(block.state_dict())
    assert {"conv_0.weight_orig", "conv_0.weight_u", "conv_0.weight_v", "conv_0.bias"} <= keys
    assert "conv_0.weight" not in keys
    same = SPADEResBlock(8, 8, 5, norm="instance", spectral=False, hidden=8)
    assert not same.learned_shortcut and not hasattr(same, "conv_s")
    assert not hasattr(same, "norm_s") and "conv_0.weight" in same.state_dict()


def test_res_block_forward_is_the_official_composition():
    block = SPADEResBlock(6, 4, 3, norm="instance", spectral=False, hidden=8).eval()
    x, segmap = torch.randn(2, 6, 8, 8), one_hot_map(2, 3, 16, 16)
    shortcut = block.conv_s(reference_spade(block.norm_s, x, segmap))
    dx = block.conv_0(F.leaky_relu(reference_spade(block.norm_0, x, segmap), 0.2))
    dx = block.conv_1(F.leaky_relu(reference_spade(block.norm_1, dx, segmap), 0.2))
    torch.testing.assert_close(block(x, segmap), shortcut + dx, rtol=0, atol=1e-5)
    identity = SPADEResBlock(6, 6, 3, norm="instance", spectral=False, hidden=8).eval()
    dx = identity.conv_0(F.leaky_relu(reference_spade(identity.norm_0, x, segmap), 0.2))
    dx = identity.conv_1(F.leaky_relu(reference_spade(identity.norm_1, dx, segmap), 0.2))
    torch.testing.assert_close(identity(x, segmap), x + dx, rtol=0, atol=1e-5)


def test_spectral_norm_power_iteration_only_in_training():
    block = SPADEResBlock(4, 4, 2, norm="batch", spectral=True, hidden=8)
    x, segmap = torch.randn(2, 4, 4, 4), one_hot_map(2, 2, 4, 4)
    u0 = block.conv_0.weight_u.clone()
    block.eval()(x, segmap)
    assert torch.equal(block.conv_0.weight_u, u0)
    block.train()(x, segmap)
    assert not torch.equal(block.conv_0.weight_u, u0)
    # After the iteration, eval divides weight_orig by sigma = u . (W v) with the stored u, v.
    block.eval()(x, segmap)
    w = block.conv_0.weight_orig.flatten(1)
    sigma = torch.dot(block.conv_0.weight_u, w @ block.conv_0.weight_v)
    torch.testing.assert_close(block.conv_0.weight, block.conv_0.weight_orig / sigma)


def test_bf16_autocast_and_channels_last_stay_close_to_fp32():
    torch.manual_seed(0)
    block = SPADEResBlock(8, 4, 3, norm="batch", spectral=True, hidden=16).eval()
    x, segmap = torch.randn(2, 8, 16, 16), one_hot_map(2, 3, 16, 16)
    reference = block(x, segmap)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = block(x, segmap)
    assert fast.dtype == torch.bfloat16
    assert (fast.float() - reference).abs().max() < 0.05 * reference.abs().max()
    block = block.to(memory_format=torch.channels_last)
    out = block(x.to(memory_format=torch.channels_last),
                segmap.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
