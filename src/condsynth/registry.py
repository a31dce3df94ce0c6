"""The method registry: ``@register_method("spade", SPADEConfig)``, ``build_method(config)``,
and the parsing of configs, which needs each method's own ``model`` dataclass.

Built-in methods are the modules of :mod:`condsynth.methods`: adding a method is adding a file
there.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condsynth.config import (
    Config,
    apply_overrides,
    load_yaml,
    sections_from_dict,
)
from condsynth.errors import ConfigError

if TYPE_CHECKING:
    from condsynth.methods.base import Method


@dataclass(frozen=True)
class MethodSpec:
    name: str
    cls: type[Method]
    config_cls: type


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, config_cls: type):
    """Class decorator: make a :class:`Method` subclass buildable by name."""

    def decorate(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise RuntimeError(f"method {name!r} registered twice")
        METHODS[name] = MethodSpec(name=name, cls=cls, config_cls=config_cls)
        cls.name = name
        return cls

    return decorate


def _load_builtin_methods() -> None:
    """Import every module of :mod:`condsynth.methods` (each registers its method)."""
    import condsynth.methods as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_") and module.name != "base":
            importlib.import_module(f"{package.__name__}.{module.name}")


def available_methods() -> list[str]:
    _load_builtin_methods()
    return sorted(METHODS)


def method_spec(name: str) -> MethodSpec:
    _load_builtin_methods()
    if name not in METHODS:
        close = difflib.get_close_matches(name, sorted(METHODS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown method '{name}'.{hint} "
                          f"Available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def build_method(config: Config) -> Method:
    """Instantiate the method named by ``config.method`` with its networks."""
    return method_spec(config.method).cls(config)


# ----------------------------------------------------------------------------- configs


def parse_config(raw: dict[str, Any], where: str = "config") -> Config:
    """A strict :class:`Config` from a raw mapping (unknown keys and wrong types are errors);
    older formats are migrated (:func:`condsynth.config.migrate`)."""
    if isinstance(raw, dict) and "method" in raw:
        spec = method_spec(str(raw["method"]))
        return sections_from_dict({**raw, "method": spec.name}, spec.config_cls, where)
    return sections_from_dict(raw, object, where)   # raises: not a mapping / no method


def default_config(method: str) -> Config:
    """The default configuration of a registered method."""
    spec = method_spec(method)
    # A method may need other settings than the defaults, e.g. an image condition.
    sections = {key: dict(value) for key, value in spec.cls.config_defaults.items()}
    return parse_config({"method": spec.name, **sections}, where=f"{spec.name} defaults")


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a config file strictly, with optional ``key=value`` overrides."""
    raw = load_yaml(path)
    if "extends" in raw:
        raise ConfigError(f"{path} extends another config ('extends: {raw['extends']}'): read "
                          "it with condsynth.presets.load_preset, which resolves that")
    raw = apply_overrides(raw, list(overrides))
    return parse_config(raw, where=str(path))


def merged(config: Config, overrides: list[str]) -> Config:
    """A copy of ``config`` with overrides applied, validated again."""
    return parse_config(apply_overrides(config.to_dict(), list(overrides)))
