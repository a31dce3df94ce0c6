"""The same fast tests for every registered method: shapes, one D and one G step, save/load,
seeded determinism."""

from __future__ import annotations

import pytest
import torch

from condsynth import checkpoint
from condsynth.api import load
from condsynth.registry import available_methods, build_method
from condsynth.train import resolve_optim
from tests.tiny import SIZE, TINY, generate_inputs, tiny_batch, tiny_config

METHODS = available_methods()


def test_every_method_has_a_tiny_config():
    assert set(METHODS) <= set(TINY), f"add tiny overrides for {set(METHODS) - set(TINY)}"


@pytest.mark.parametrize("name", METHODS)
def test_forward_shapes(name):
    method = build_method(tiny_config(name))
    batch = tiny_batch(name)
    out = method.forward_generator(batch)
    assert out["fake"].shape == (2, 3, SIZE, SIZE)
    condition, instance = generate_inputs(name, batch)
    image = method.eval().generate(condition, instance=instance)
    assert image.shape == (2, 3, SIZE, SIZE)
    assert image.min() >= -1 and image.max() <= 1


@pytest.mark.parametrize("name", METHODS)
def test_one_step_changes_parameters(name):
    config = tiny_config(name)
    method = build_method(config)
    resolve_optim(config, method.optim_defaults)
    groups = method.parameter_groups()
    opt_g = torch.optim.Adam(groups["generator"], lr=1e-3)
    opt_d = torch.optim.Adam(groups["discriminator"], lr=1e-3)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    batch = tiny_batch(name)
    out = method.forward_generator(batch)
    d_losses = method.discriminator_step(batch, out)
    assert d_losses and all(k.startswith("d_") for k in d_losses)
    assert all(torch.isfinite(v) for v in d_losses.values())
    opt_d.zero_grad()
    sum(d_losses.values()).backward()
    opt_d.step()
    g_losses = method.generator_step(batch, out)
    assert g_losses and all(k.startswith("g_") for k in g_losses)
    assert all(torch.isfinite(v) for v in g_losses.values())
    opt_g.zero_grad()
    d_grads = [None if p.grad is None else p.grad.clone() for p in groups["discriminator"]]
    sum(g_losses.values()).backward()
    # The G step must leave D's gradients alone (D is frozen while G learns).
    for p, g in zip(groups["discriminator"], d_grads, strict=True):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    opt_g.step()
    after = method.state_dict()
    for net in ("generator", "discriminator"):
        changed = [k for k in after if k.startswith(net + ".")
                   and after[k].is_floating_point() and not torch.equal(after[k], before[k])]
        assert changed, f"{net} parameters did not change"


@pytest.mark.parametrize("name", METHODS)
def test_save_load_equality(name, tmp_path):
    config = tiny_config(name)
    torch.manual_seed(1)
    method = build_method(config)
    checkpoint.write_checkpoint(tmp_path, config, method.networks(), step=3)
    loaded = load(tmp_path, device="cpu")
    for net_name, net in method.networks().items():
        theirs = loaded.networks()[net_name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, theirs[key]), f"{net_name}.{key}"
    condition, instance = generate_inputs(name, tiny_batch(name))
    method.eval()
    torch.manual_seed(5)
    a = method.generate(condition, instance=instance)
    torch.manual_seed(5)
    b = loaded.generate(condition, instance=instance)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_seeded_determinism(name):
    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(123)
        method = build_method(tiny_config(name))
        batch = tiny_batch(name)
        out = method.forward_generator(batch)
        losses = {**method.discriminator_step(batch, out), **method.generator_step(batch, out)}
        return {"fake": out["fake"].detach(), **{k: v.detach() for k, v in losses.items()}}

    a, b = run(), run()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
