"""SPADE at small training sizes: fit_size's choice of up-samplings and discriminator, and a
generator whose every stage sees the layout."""

from __future__ import annotations

import pytest
import torch

from condsynth.config import apply_overrides
from condsynth.errors import ConfigError
from condsynth.methods.spade import MIN_GRID, SPADEConfig, SPADEGenerator, fit_to_size
from condsynth.registry import build_method, default_config, parse_config

NUM_CLASSES = 3
SMALL = ["model.ngf=8", "model.ndf=8", "model.spade_hidden=16", "model.lambda_vgg=0",
         "model.norm_g=batch"]


def small_config(*overrides: str, size: int = 32):
    raw = default_config("spade").to_dict()
    raw["condition"].update(num_classes=NUM_CLASSES, use_instance=False)
    raw["data"].update(load_size=size, crop_size=size)
    return parse_config(apply_overrides(raw, SMALL + list(overrides)))


@pytest.mark.parametrize("crop,layers,expected", [
    (32, "normal", 3), (64, "normal", 4), (48, "normal", 3), (128, "normal", 5),
    (256, "normal", 5), (64, "more", 4), (256, "more", 6), (512, "most", 7), (16, "normal", 2),
    (4, "normal", 0), (2, "normal", 0)])
def test_fit_to_size_keeps_a_starting_grid_of_at_least_four(crop, layers, expected):
    cfg = SPADEConfig(num_upsampling_layers=layers)
    fit_to_size(cfg, crop, 1.0)
    assert cfg.num_upsampling == expected
    if crop >= MIN_GRID:
        assert crop // 2 ** expected >= MIN_GRID            # the grid is at least 4x4
    if expected < {"normal": 5, "more": 6, "most": 7}[layers]:
        assert crop // 2 ** (expected + 1) < MIN_GRID       # and no more doublings are left out


def test_fit_to_size_counts_the_shorter_side():
    cfg = SPADEConfig()
    fit_to_size(cfg, 64, 2.0)                                # 32x64 crop
    assert cfg.num_upsampling == 3                           # a 4x8 grid


def test_official_networks_and_explicit_settings_are_kept():
    cfg = SPADEConfig(fit_size=False)
    assert fit_to_size(cfg, 32, 1.0) == [] and cfg.num_upsampling == 5
    cfg = SPADEConfig(num_upsampling=4)
    assert fit_to_size(cfg, 32, 1.0) == [] and cfg.num_upsampling == 4


def test_the_choice_is_said_and_written_into_the_run_config(capsys):
    method = build_method(small_config())
    said = capsys.readouterr().out
    assert "model.num_upsampling 3 instead of 5" in said and "4x4 starting grid" in said
    assert "model.fit_size=false" in said
    assert method.config.model.num_upsampling == 3 and method.size_multiple() == 8
    again = build_method(parse_config(method.config.to_dict()))  # as read from config.yaml
    assert capsys.readouterr().out == ""                         # nothing left to change
    assert again.generator.num_upsampling == 3
    build_method(small_config(size=128))
    assert capsys.readouterr().out == ""                         # official sizes: silent


def test_generator_with_fewer_doublings():
    g = SPADEGenerator(4, ngf=4, base_grid=(4, 4), hidden=4, norm="batch",
                       num_upsampling=3).eval()
    assert g.grid_for(32, 32) == (4, 4)
    assert g(torch.rand(2, 4, 32, 32)).shape == (2, 3, 32, 32)
    assert g(torch.rand(1, 4, 40, 24)).shape == (1, 3, 40, 24)   # multiples of 8
    with pytest.raises(ConfigError, match="num_upsampling"):
        SPADEGenerator(4, ngf=4, hidden=4, num_upsampling=6)


def stage_inputs(method, label: torch.Tensor) -> dict[str, torch.Tensor]:
    """The activation entering each residual block, for one-hot ``label`` (B, H, W)."""
    seen: dict[str, torch.Tensor] = {}
    g = method.generator
    hooks = [getattr(g, name).register_forward_hook(
        lambda module, args, out, name=name: seen.__setitem__(name, args[0]))
        for name in ("head_0", "G_middle_0", "up_0")]
    method.generate(label)
    for hook in hooks:
        hook.remove()
    return seen


def test_every_stage_sees_the_layout_at_32_pixels():
    """Two label maps alike only near the top-left corner: with the official 1x1 grid at 32
    pixels the generator's first stages read the map at that corner alone, so they cannot tell
    them apart (and batch norm then sees one value for the whole batch)."""
    a = torch.zeros(1, 32, 32, dtype=torch.long)
    b = a.clone()
    b[:, 8:, 8:] = 1                                           # an object off the corner
    torch.manual_seed(0)
    fitted = build_method(small_config())
    torch.manual_seed(0)
    official = build_method(small_config("model.fit_size=false"))
    for method, distinguishes in ((fitted, True), (official, False)):
        ins_a, ins_b = stage_inputs(method, a), stage_inputs(method, b)
        assert not torch.equal(ins_a["up_0"], ins_b["up_0"])
        assert (not torch.equal(ins_a["head_0"], ins_b["head_0"])) == distinguishes
