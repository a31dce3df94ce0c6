"""Presets: finding them, ``extends:`` (deep merge, cycles, missing bases), and the shipped
presets resolving to the settings they had before they extended one another."""

from __future__ import annotations

import pytest

from condsynth.errors import ConfigError
from condsynth.presets import (
    deep_merge,
    list_presets,
    load_preset,
    load_preset_raw,
    preset_path,
)
from condsynth.registry import load_config, parse_config


def test_every_preset_resolves_to_a_valid_config():
    names = list_presets()
    assert {"pix2pix_cpu", "autopainter_full", "pix2pixhd_label2city_1024p"} <= set(names)
    for name in names:
        raw = load_preset_raw(name)
        assert "extends" not in raw
        parse_config(raw, where=name)


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"model": {"ngf": 64, "ndf": 64}, "tags": [1, 2], "method": "pix2pix"}
    merged = deep_merge(base, {"model": {"ngf": 32}, "tags": [3], "method": "spade"})
    assert merged == {"model": {"ngf": 32, "ndf": 64}, "tags": [3], "method": "spade"}
    assert base["model"]["ngf"] == 64                       # the base is not changed


def test_the_autopainter_ablation_differs_only_in_loss_weights():
    base = load_preset_raw("autopainter_pix2pix")
    # The paper's setup, as the four files spelled it out before they shared a base.
    assert base["method"] == "autopainter"
    assert {k: base["model"][k] for k in ("ngf", "ndf", "num_downs", "n_layers_d", "lambda_adv",
                                          "lambda_pix", "lambda_feat", "lambda_tv")} == {
        "ngf": 64, "ndf": 64, "num_downs": 9, "n_layers_d": 3, "lambda_adv": 1.0,
        "lambda_pix": 50.0, "lambda_feat": 0.0, "lambda_tv": 0.0}
    assert {k: base["data"][k] for k in ("layout", "line_extraction", "load_size",
                                         "crop_size")} == {
        "layout": "sketch", "line_extraction": "xdog_random", "load_size": 530, "crop_size": 512}
    assert base["train"] == {"max_steps": 100000, "batch_size": 1, "decay_start": 0.5,
                             "log_every": 100, "sample_every": 1000, "checkpoint_every": 5000,
                             "num_samples": 6}
    weights = {"tv": (0.0, 5.0), "feature": (1.0, 0.0), "full": (1.0, 5.0)}
    for name, (feat, tv) in weights.items():
        expected = deep_merge(base, {"model": {"lambda_feat": feat, "lambda_tv": tv}})
        assert load_preset_raw(f"autopainter_{name}") == expected, name


def test_pix2pixhd_1024p_is_the_512p_preset_with_a_local_enhancer():
    base = load_preset_raw("pix2pixhd_label2city_512p")
    hd = load_preset_raw("pix2pixhd_label2city_1024p")
    assert hd == deep_merge(base, {
        "model": {"ngf": 32, "n_local_enhancers": 1, "num_d": 3, "niter_fix_global": 29750},
        "data": {"preprocess": "none", "load_size": 2048, "crop_size": 2048},
        "train": {"max_steps": 297500, "constant_epochs": 50, "decay_epochs": 50}})
    assert base["model"]["ngf"] == 64 and base["train"]["max_steps"] == 595000


def test_spade_cpu_style_is_spade_cpu_with_the_style_encoder():
    assert load_preset_raw("spade_cpu_style") == deep_merge(load_preset_raw("spade_cpu"), {
        "model": {"use_vae": True, "lambda_kld": 0.005}, "train": {"max_steps": 3000}})


def test_extends_a_preset_or_a_file_beside_it(tmp_path):
    (tmp_path / "base.yaml").write_text("extends: pix2pix_cpu\nmodel:\n  ngf: 8\n")
    (tmp_path / "child.yaml").write_text("extends: base\ntrain:\n  max_steps: 7\n")
    raw = load_preset_raw(tmp_path / "child.yaml")
    assert raw["model"]["ngf"] == 8 and raw["model"]["ndf"] == 32
    assert raw["train"]["max_steps"] == 7 and raw["train"]["batch_size"] == 4
    config = load_preset(str(tmp_path / "child.yaml"), ["train.batch_size=2"])
    assert config.train.batch_size == 2 and config.model.ngf == 8


def test_extends_cycles_and_missing_bases_are_clear_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a\n")
    with pytest.raises(ConfigError, match="circle"):
        load_preset_raw(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: no_such_preset\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: 'extends: no_such_preset' names no file.*"
                                          r"Presets: .*pix2pix_cpu"):
        load_preset_raw(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: [a, b]\n")
    with pytest.raises(ConfigError, match="must name a preset"):
        load_preset_raw(tmp_path / "d.yaml")
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        preset_path("no_such_preset")
    with pytest.raises(ConfigError, match="load_preset"):
        load_config(tmp_path / "c.yaml")
