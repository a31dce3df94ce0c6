"""The method registry: ``@register_method("spade", SPADEConfig)`` and ``build_method(config)``."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from condsynth.errors import ConfigError

if TYPE_CHECKING:
    from condsynth.config import Config
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
    import condsynth.methods  # noqa: F401  (registers the built-in methods)


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
