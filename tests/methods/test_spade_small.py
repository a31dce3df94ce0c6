"""SPADE at small training sizes: fit_size's choice of up-samplings and discriminator, and a
generator whose every stage sees the layout."""

from __future__ import annotations

import pytest
import torch

from condsynth.config import apply_overrides
from condsynth.errors import ConfigError
from condsynth.methods.spade import MIN_GRID, SPADEConfig, SPADEGenerator, fit_to_size
from condsynth.registry import build_method, default_config, parse_config
from condsynth.train import make_optimizers, resolve_optimizers, train_step

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


COLOURS = torch.tensor([[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, 1.0]])


def blocky_scenes(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Label maps of 4x4 cells of 8 pixels (classes 0-2) and their pictures: one flat colour
    per class, so the layout alone decides the image."""
    label = torch.randint(0, NUM_CLASSES, (count, 4, 4), generator=generator)
    label = label.repeat_interleave(8, 1).repeat_interleave(8, 2)           # (B, 32, 32)
    return label, COLOURS[label].permute(0, 3, 1, 2)                         # (B, 3, 32, 32)


@pytest.mark.slow
def test_trained_at_32_pixels_the_pictures_follow_the_layout():
    """60 steps at batch 8 with the defaults: most pixels take their class's colour (about 60 %
    here; one in three by chance). With the official 1x1 grid (model.fit_size=false) the same
    run colours 29 % of the pixels right."""
    torch.set_num_threads(1)             # one thread: the same float sums on every machine
    torch.manual_seed(0)
    config = small_config("train.fused_adam=false")
    method = build_method(config)
    device = torch.device("cpu")
    optimizers = make_optimizers(method, resolve_optimizers(config, method), device, fused=False)
    scenes = torch.Generator().manual_seed(0)
    for step in range(60):
        label, image = blocky_scenes(8, scenes)
        train_step(method, {"label": label, "image": image}, optimizers, step, "fp32", device)
    label, _ = blocky_scenes(16, torch.Generator().manual_seed(1))
    out = method.generate(label).permute(0, 2, 3, 1)                        # (16, 32, 32, 3)
    nearest = ((out[..., None, :] - COLOURS) ** 2).sum(-1).argmin(-1)         # (16, 32, 32)
    assert (nearest == label).float().mean() > 0.5


def test_a_run_saved_before_fit_size_keeps_the_official_networks(tmp_path):
    from condsynth.checkpoint import read_config
    from condsynth.config import save_config

    old = small_config()                       # as an older condsynth wrote it: no choice made
    assert old.model.num_upsampling is None
    save_config(old, tmp_path / "config.yaml")
    config = read_config(tmp_path)
    assert config.model.fit_size is False
    assert build_method(config).generator.num_upsampling == 5          # the official 1x1 grid
    new = build_method(small_config()).config                          # a run trained now
    save_config(new, tmp_path / "config.yaml")
    assert build_method(read_config(tmp_path)).generator.num_upsampling == 3
