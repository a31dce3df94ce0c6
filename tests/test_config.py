"""Strict configs: unknown keys and wrong types are errors; overrides; YAML round trip."""

from __future__ import annotations

import pytest

from condsynth.config import apply_overrides, save_config
from condsynth.errors import ConfigError
from condsynth.registry import default_config, load_config, merged, parse_config


def test_round_trip(tmp_path):
    config = default_config("pix2pix")
    config.condition.num_classes = 7
    config.model.ngf = 16
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path):
    raw = default_config("pix2pix").to_dict()
    raw["model"]["nfg"] = 3
    with pytest.raises(ConfigError, match="unknown key 'nfg'; did you mean 'ngf'"):
        parse_config(raw)


def test_unknown_section_and_method():
    with pytest.raises(ConfigError, match="unknown key 'trian'"):
        parse_config({"method": "pix2pix", "trian": {}})
    with pytest.raises(ConfigError, match="unknown method 'pix2pixx'.*Did you mean 'pix2pix'"):
        parse_config({"method": "pix2pixx"})


@pytest.mark.parametrize("override, message", [
    ("model.ngf=abc", "expected an integer"),
    ("model.norm=group", "is not one of"),
    ("train.ema=yes", "expected a number"),
    ("model.dropout=3", "expected true or false"),
    ("ngf", "not of the form section.key=value"),
])
def test_bad_values(override, message):
    with pytest.raises(ConfigError, match=message):
        merged(default_config("pix2pix"), [override])


def test_overrides_parse_yaml_values():
    raw = apply_overrides(default_config("pix2pix").to_dict(),
                          ["train.lr_g=1e-4", "label.class_names=[a, b]", "data.palette=null"])
    config = parse_config(raw)
    assert config.train.lr_g == 1e-4
    assert config.condition.class_names == ["a", "b"]
    assert config.data.palette is None


def test_future_format_version_is_refused():
    raw = default_config("pix2pix").to_dict()
    raw["format_version"] = 99
    with pytest.raises(ConfigError, match="format_version 99"):
        parse_config(raw)
