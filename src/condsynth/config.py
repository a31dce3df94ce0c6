"""Typed dataclass configs: strict YAML load and save, ``key=value`` overrides.

A run's whole configuration is one :class:`Config`: the method's own model config (a dataclass the
method registers), the label encoding, the data and the training schedule. Unknown keys and values
of the wrong type are errors, never warnings, so a typo cannot silently train the wrong model.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from condsynth.errors import ConfigError

FORMAT_VERSION = 1


@dataclass
class LabelConfig:
    """How a label map (and instance map) becomes the generator's input channels."""

    num_classes: int | None = None   # classes in the label maps; None = detect from the data;
                                     # 0 = no labels, the condition is an image (`source`)
    dontcare_label: int = 255        # label value meaning "unknown / ignore"
    contain_dontcare_label: bool = False  # give dont-care pixels a channel of their own
    use_instance: bool = False       # add the instance-boundary channel
    source_channels: int = 3         # channels of an image condition (num_classes == 0)
    class_names: list[str] = field(default_factory=list)        # for pages and the studio
    class_colours: list[list[int]] = field(default_factory=list)  # RGB per class id

    @property
    def input_channels(self) -> int:
        """Channels of the encoded condition the generator sees."""
        if self.num_classes is None:
            raise ConfigError("label.num_classes is not resolved yet (set it or give --data)")
        if self.num_classes == 0:
            return self.source_channels
        return (self.num_classes + int(self.contain_dontcare_label)
                + int(self.use_instance))


@dataclass
class DataConfig:
    """Where the pairs are and how they are resized, cropped and flipped."""

    root: str = ""                   # dataset folder
    layout: Literal["auto", "pix2pixhd", "spade_custom", "cityscapes", "ade20k", "coco_stuff",
                    "aligned", "sketch", "sketch_pairs"] = "auto"
    load_size: int = 256             # resize target before cropping (width for scale_width)
    crop_size: int = 256             # training crop (width)
    aspect_ratio: float = 1.0        # crop width / crop height
    preprocess: Literal["resize_and_crop", "scale_width", "scale_width_and_crop", "crop",
                        "fixed", "none"] = "resize_and_crop"
    flip: bool = True                # random horizontal flip in training
    direction: Literal["AtoB", "BtoA"] = "AtoB"   # aligned A|B images: which side is the input
    palette: str | None = None       # JSON mapping colours to class ids, for RGB label maps
    num_workers: int = 0             # DataLoader worker processes
    max_items: int | None = None     # use only the first N pairs
    line_extraction: Literal["none", "xdog", "xdog_random"] = "none"  # sketch layout: give each
                                     # image its XDoG line drawing as `source` (1, H, W);
                                     # xdog_random draws the XDoG parameters per training item


Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


@dataclass
class TrainConfig:
    """The schedule: steps, optimizers, precision, logging and checkpoints."""

    max_steps: int = 2000
    batch_size: int = 1
    lr_g: float | None = None        # None = the method's default
    lr_d: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    decay_start: float = 0.5         # fraction of max_steps after which the lr decays linearly to 0
    seed: int = 0
    ema: float = 0.0                 # EMA decay of the generator weights; 0 = off
    precision: Precision = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = 10              # steps between logged scalars
    sample_every: int = 200          # steps between refreshes of samples/ and index.html
    checkpoint_every: int = 500      # steps between checkpoints
    num_samples: int = 4             # rows on the samples page
    tensorboard: bool = True         # write TensorBoard scalars and grids when available


@dataclass
class Config:
    """Everything a run needs; saved as ``config.yaml`` in the run directory."""

    method: str
    model: Any                       # the method's registered config dataclass
    label: LabelConfig = field(default_factory=LabelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> Config:
        from condsynth.registry import method_spec

        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping, found {type(raw).__name__}")
        if "method" not in raw:
            raise ConfigError(f"{where}: the key 'method' is missing")
        spec = method_spec(str(raw["method"]))
        version = raw.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ConfigError(f"{where}: format_version {version} is not supported "
                              f"(this condsynth reads version {FORMAT_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        _reject_unknown(raw, known, where)
        return cls(
            method=spec.name,
            model=from_dict(spec.config_cls, raw.get("model") or {}, f"{where}: model"),
            label=from_dict(LabelConfig, raw.get("label") or {}, f"{where}: label"),
            data=from_dict(DataConfig, raw.get("data") or {}, f"{where}: data"),
            train=from_dict(TrainConfig, raw.get("train") or {}, f"{where}: train"),
        )


def default_config(method: str) -> Config:
    """The default configuration of a registered method."""
    from condsynth.registry import method_spec

    spec = method_spec(method)
    # A method may need other settings than the defaults, e.g. an image condition (label).
    sections = {key: dict(value) for key, value in spec.cls.config_defaults.items()}
    return Config.from_dict({"method": spec.name, **sections}, where=f"{spec.name} defaults")


def _reject_unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint} "
                              f"(known keys: {', '.join(sorted(known))})")


def from_dict(cls: type, raw: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``raw``, rejecting unknown keys and wrong types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, found {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    _reject_unknown(raw, set(fields), where)
    values = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in raw.items()}
    return cls(**values)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of "
                          f"{[getattr(a, '__name__', str(a)) for a in args]}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, found {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, found {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; take it as the number it means.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, found {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, found {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {tp!r}")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form section.key=value "
                              "(for example train.lr_g=1e-4 or model.ngf=32)")
        path, text = item.split("=", 1)
        keys = path.strip().split(".")
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{key}' is not a section")
        node[keys[-1]] = yaml.safe_load(text) if text.strip() else None
    return raw


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a config file strictly, with optional ``key=value`` overrides."""
    raw = apply_overrides(load_yaml(path), list(overrides))
    return Config.from_dict(raw, where=str(path))


def config_yaml(config: Config) -> str:
    """The config as YAML text, every field written out."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(config_yaml(config))


def merged(config: Config, overrides: list[str]) -> Config:
    """A copy of ``config`` with overrides applied, validated again."""
    return Config.from_dict(apply_overrides(config.to_dict(), list(overrides)))
