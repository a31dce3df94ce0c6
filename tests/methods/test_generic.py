"""The same fast tests for every registered method, through the one contract: capabilities,
shapes of ``generate``, one ``train_step`` (every phase, with its optimizer), save/load with the
method state, seeded determinism."""

from __future__ import annotations

import pytest
import torch

from condsynth import checkpoint
from condsynth.api import load
from condsynth.methods.base import KIND_CAPABILITY, Capability
from condsynth.registry import available_methods, build_method
from condsynth.train import make_optimizers, resolve_optimizers, train_step
from tests.tiny import SIZE, TINY, generate_inputs, image_channels, tiny_batch, tiny_config

METHODS = available_methods()
CPU = torch.device("cpu")


def test_every_method_has_a_tiny_config():
    assert set(METHODS) <= set(TINY), f"add tiny overrides for {set(METHODS) - set(TINY)}"


@pytest.mark.parametrize("name", METHODS)
def test_capabilities_follow_the_condition(name):
    config = tiny_config(name)
    capabilities = build_method(config).capabilities()
    kind = KIND_CAPABILITY[config.condition.kind]
    if kind == Capability.IMAGE and config.condition.image_channels == 1:
        kind = Capability.SKETCH
    assert kind in capabilities
    assert all(isinstance(c, Capability) for c in capabilities)


@pytest.mark.parametrize("name", METHODS)
def test_generate_shapes(name):
    config = tiny_config(name)
    method = build_method(config).eval()
    batch = tiny_batch(config)
    condition, instance = generate_inputs(config, batch)
    image = method.generate(condition, batch_size=2, instance=instance,
                            **method.batch_inputs(batch))
    assert image.shape == (2, image_channels(config), SIZE, SIZE)
    assert image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1


@pytest.mark.parametrize("name", METHODS)
def test_one_train_step_changes_every_group(name):
    config = tiny_config(name)
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    groups = method.parameter_groups()
    before = {g: [p.detach().clone() for p in params] for g, params in groups.items()}
    batch = tiny_batch(config)
    phases = [p for p in method.phases() if p.active(0)]
    assert phases, f"{name} trains nothing at step 0"
    # Each phase, as train_step runs it, writes gradients only into its own group (the other
    # players are frozen while it learns).
    cache: dict = {}
    for phase in phases:
        others = {id(p): None if p.grad is None else p.grad.clone()
                  for g, params in groups.items() if g != phase.optimizer for p in params}
        terms = method.phase_losses(phase, batch, cache)
        assert terms and all(torch.isfinite(v) for v in terms.values()), phase.name
        optimizers[phase.optimizer].zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        for g, params in groups.items():
            if g == phase.optimizer:
                continue
            for p in params:
                old = others[id(p)]
                assert (p.grad is None and old is None) or torch.equal(p.grad, old), \
                    f"phase {phase.name} wrote gradients into {g}"
        optimizers[phase.optimizer].step()
    for g, params in groups.items():
        if not any(p.optimizer == g for p in phases):
            continue
        changed = any(not torch.equal(p, b) for p, b in zip(params, before[g], strict=True))
        assert changed, f"{name}: the {g} parameters did not change"


@pytest.mark.parametrize("name", METHODS)
def test_train_step_returns_finite_terms(name):
    config = tiny_config(name)
    method = build_method(config)
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
    losses = train_step(method, tiny_batch(config), optimizers, 0, "fp32", CPU)
    assert losses and all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("name", METHODS)
def test_save_load_equality(name, tmp_path):
    config = tiny_config(name)
    torch.manual_seed(1)
    method = build_method(config)
    checkpoint.write_checkpoint(tmp_path, config, method.networks(), step=3,
                                method_state=method.method_state())
    loaded = load(tmp_path, device="cpu")
    for net_name, net in method.networks().items():
        theirs = loaded.networks()[net_name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, theirs[key]), f"{net_name}.{key}"
    for key, value in method.method_state().items():
        assert torch.equal(value, loaded.method_state()[key]), key
    batch = tiny_batch(config)
    condition, instance = generate_inputs(config, batch)
    method.eval()
    torch.manual_seed(5)
    a = method.generate(condition, batch_size=2, instance=instance, **method.batch_inputs(batch))
    torch.manual_seed(5)
    b = loaded.generate(condition, batch_size=2, instance=instance, **method.batch_inputs(batch))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_seeded_determinism(name):
    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(123)
        config = tiny_config(name)
        method = build_method(config)
        optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU)
        losses = train_step(method, tiny_batch(config), optimizers, 0, "fp32", CPU)
        return {**{k: v.detach() for k, v in losses.items()},
                **{k: v.detach().clone() for k, v in method.state_dict().items()}}

    a, b = run(), run()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
