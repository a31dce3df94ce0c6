"""YAML presets: the configs shipped with condsynth, and config files that ``extends:`` another.

A config file may name a base at its top level::

    extends: autopainter_pix2pix      # a preset name, or a path relative to this file
    model:
      lambda_tv: 5.0

The base is loaded first (its own ``extends:`` too), then this file is merged over it:
mappings merge key by key, lists and scalars replace. The result is a plain config dict, as
if the file had been written out in full.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

from condsynth.config import Config, apply_overrides, load_yaml
from condsynth.errors import ConfigError
from condsynth.registry import parse_config

PRESET_SUFFIX = ".yaml"
EXTENDS = "extends"

__all__ = ["PRESET_SUFFIX", "preset_path", "list_presets", "load_preset_raw", "load_preset",
           "deep_merge"]


def _preset_folder() -> Path:
    return Path(str(resources.files("condsynth") / "presets"))


def preset_path(name_or_path: str | Path) -> Path:
    """A config file: a path, or the name of a preset shipped with condsynth."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = _preset_folder() / f"{name_or_path}{PRESET_SUFFIX}"
    if preset.is_file():
        return preset
    raise ConfigError(f"config '{name_or_path}' is neither a file nor a preset. Presets: "
                      f"{', '.join(list_presets()) or 'none'}")


def list_presets() -> list[str]:
    """The names of the presets shipped with condsynth, sorted."""
    folder = _preset_folder()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(PRESET_SUFFIX)] for p in folder.iterdir()
                  if p.name.endswith(PRESET_SUFFIX))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_preset_raw(name_or_path: str | Path) -> dict[str, Any]:
    """The config dict of a preset name or a YAML file, its ``extends:`` chain resolved."""
    return _load_resolved(preset_path(name_or_path), chain=[])


def load_preset(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A preset or config file (``extends:`` resolved) with ``key=value`` overrides, strictly
    checked."""
    path = preset_path(name_or_path)
    raw = apply_overrides(_load_resolved(path, chain=[]), list(overrides))
    return parse_config(raw, where=str(path))


def _load_resolved(path: Path, chain: list[Path]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in [*chain[chain.index(resolved):], resolved])
        raise ConfigError(f"{path}: 'extends' goes round in a circle ({cycle}). Fix: remove "
                          "one of these 'extends' lines.")
    raw = load_yaml(path)
    if EXTENDS not in raw:
        return raw
    base = raw.pop(EXTENDS)
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: 'extends' must name a preset or a YAML file, found "
                          f"{base!r}")
    return deep_merge(_load_resolved(_base_path(path, base), [*chain, resolved]), raw)


def _base_path(path: Path, base: str) -> Path:
    """Where ``extends: base`` of the file ``path`` points: a path relative to that file (the
    suffix may be left out), else a preset."""
    candidates = [path.parent / base, path.parent / f"{base}{PRESET_SUFFIX}",
                  _preset_folder() / f"{base}{PRESET_SUFFIX}"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(dict.fromkeys(str(c) for c in candidates))
    raise ConfigError(f"{path}: 'extends: {base}' names no file (tried {tried}). Presets: "
                      f"{', '.join(list_presets()) or 'none'}")
