"""Typed dataclass configs: strict YAML load and save, ``key=value`` overrides.

A run's whole configuration is one :class:`Config`: the method's own model config (a dataclass the
method registers), the condition, the data and the training schedule. Unknown keys and values
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

FORMAT_VERSION = 2                   # 2: the `label` section became `condition` (with `kind`)


ConditionKind = Literal["none", "class", "vector", "label_map", "image"]
CONDITION_KINDS: tuple[str, ...] = typing.get_args(ConditionKind)


def ranged(default: Any, *, at_least: float | None = None, at_most: float | None = None,
           above: float | None = None, below: float | None = None) -> Any:
    """A dataclass field whose value (unless None) must lie in a range, which :func:`from_dict`
    checks: a batch size of -1 or a learning rate of 0 is an error, not a hang or a traceback."""
    bounds = {"at_least": at_least, "at_most": at_most, "above": above, "below": below}
    return field(default=default, metadata={k: v for k, v in bounds.items() if v is not None})


_RULES = {"at_least": (lambda v, b: v >= b, "at least"), "at_most": (lambda v, b: v <= b,
          "at most"), "above": (lambda v, b: v > b, "above"), "below": (lambda v, b: v < b,
          "below")}


def check_range(f: dataclasses.Field, value: Any, where: str) -> None:
    """Raise a ConfigError when ``value`` breaks a bound of ``ranged`` field ``f``."""
    if value is None or not f.metadata:
        return
    broken = [f"{text} {bound}" for key, bound in f.metadata.items() if key in _RULES
              for test, text in [_RULES[key]] if not test(value, bound)]
    if broken:
        rules = " and ".join(f"{text} {bound}" for key, bound in f.metadata.items()
                             if key in _RULES for _, text in [_RULES[key]])
        raise ConfigError(f"{where}: {value!r} is out of range: it must be {rules}. Fix: "
                          "set it to a value in that range.")


@dataclass
class ConditionConfig:
    """What the generator is conditioned on, and how that becomes its input.

    ``kind`` decides: ``none`` (noise only), ``class`` (one of ``num_classes``, one-hot),
    ``vector`` (an attribute vector, one value per name in ``attributes``), ``label_map`` (a
    class-id map, one-hot with optional dont-care and instance-boundary channels) or ``image``
    (a sketch, an A image, a synthetic image: ``image_channels`` channels).
    """

    kind: ConditionKind = "label_map"
    # class and label_map kinds; None = detect from the data
    num_classes: int | None = ranged(None, at_least=0)
    dontcare_label: int = ranged(255, at_least=0)  # label value meaning "unknown / ignore"
    contain_dontcare_label: bool = False  # give dont-care pixels a channel of their own
    use_instance: bool = False       # add the instance-boundary channel
    image_channels: int = ranged(3, at_least=1)  # channels of an image condition
    attributes: list[str] = field(default_factory=list)         # vector kind: attribute names
    class_names: list[str] = field(default_factory=list)        # for pages and the studio
    class_colours: list[list[int]] = field(default_factory=list)  # RGB per class id

    @property
    def input_channels(self) -> int:
        """Channels (label_map, image) or length (class, vector) of the encoded condition."""
        if self.kind == "none":
            return 0
        if self.kind == "image":
            return self.image_channels
        if self.kind == "vector":
            return len(self.attributes)
        if self.num_classes is None:
            raise ConfigError("condition.num_classes is not resolved yet (set it or give --data)")
        if self.kind == "class":
            return self.num_classes
        return (self.num_classes + int(self.contain_dontcare_label)
                + int(self.use_instance))


@dataclass
class DataConfig:
    """Where the data is and how it is resized, cropped and flipped."""

    root: str = ""                   # dataset folder
    layout: Literal["auto", "pix2pixhd", "spade_custom", "cityscapes", "ade20k", "coco_stuff",
                    "aligned", "sketch", "sketch_pairs", "normals",
                    # sources of the GAN toolbox (condsynth.data.sources)
                    "image_folder", "class_folders", "attributes_csv", "celeba", "unpaired",
                    "idx"] = "auto"
    load_size: int = ranged(256, at_least=1)  # resize target before cropping (scale_width: width)
    crop_size: int = ranged(256, at_least=1)  # training crop (width)
    aspect_ratio: float = ranged(1.0, above=0)  # crop width / crop height
    preprocess: Literal["resize_and_crop", "scale_width", "scale_width_and_crop", "crop",
                        "fixed", "none"] = "resize_and_crop"
    flip: bool = True                # random horizontal flip in training
    shuffle: bool = True             # a new order every epoch; false = file order (serial
                                     # batches, to retrace a recorded run)
    direction: Literal["AtoB", "BtoA"] = "AtoB"   # aligned A|B images: which side is the input;
                                     # normals: AtoB normals → image, BtoA image → normals
    palette: str | None = None       # JSON mapping colours to class ids, for RGB label maps
    num_workers: int = ranged(0, at_least=0)  # DataLoader worker processes
    max_items: int | None = ranged(None, at_least=1)  # use only the first N pairs
    line_extraction: Literal["none", "xdog", "xdog_random"] = "none"  # sketch layout: give each
                                     # image its XDoG line drawing as `source` (1, H, W);
                                     # xdog_random draws the XDoG parameters per training item
    channels: int = 3                # image channels of the sources: 1 greyscale, 3 RGB
    attributes: list[str] = field(default_factory=list)  # attribute tables: keep only these
                                     # columns, in this order; empty = all
    labeled_per_class: int | None = None  # semi-supervised: keep this many labels per class
                                     # (seeded, stratified), the rest become class -1
    labeled_batch: bool = False      # class sources in training: each item also carries a
                                     # labelled item (labeled_image, labeled_class), every
                                     # labelled item once per pass over them (K+1 GAN)
    idx_prefix: str | None = None    # IDX files: which set of a folder holding several, e.g.
                                     # "emnist-letters"; None = the only one there

    @property
    def crop_hw(self) -> tuple[int, int]:
        """(H, W) of the training crop: ``crop_size`` wide, ``crop_size / aspect_ratio`` high."""
        return max(1, round(self.crop_size / self.aspect_ratio)), self.crop_size


Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


@dataclass
class OptimizerConfig:
    """Settings of one named optimizer (a method's parameter group); unset = the method's."""

    lr: float | None = ranged(None, above=0)
    beta1: float | None = ranged(None, at_least=0, below=1)  # Adam's betas; SGD's momentum
    beta2: float | None = ranged(None, at_least=0, below=1)
    eps: float | None = ranged(None, above=0)
    weight_decay: float | None = ranged(None, at_least=0)


@dataclass
class TrainConfig:
    """The schedule: steps, optimizers, precision, logging and checkpoints."""

    max_steps: int = ranged(2000, at_least=1)
    batch_size: int = ranged(1, at_least=1)
    lr_g: float | None = ranged(None, above=0)  # None = the method's default ("generator")
    lr_d: float | None = ranged(None, above=0)  # the "discriminator" optimizer's
    beta1: float | None = ranged(None, at_least=0, below=1)  # Adam betas of both
    beta2: float | None = ranged(None, at_least=0, below=1)
    optimizers: dict[str, OptimizerConfig] = field(default_factory=dict)  # by parameter group
                                     # name, e.g. {refiner: {lr: 1e-3}}; wins over the above
    lr_schedule: Literal["fraction", "epochs"] = "fraction"   # fraction: constant, then linear
                                     # to 0 from decay_start * max_steps; epochs: the official
                                     # niter + niter_decay, changed at epoch ends (below)
    # fraction of max_steps after which the lr decays linearly to 0
    decay_start: float = ranged(0.5, at_least=0, at_most=1)
    seed: int = ranged(0, at_least=0, below=2**32)   # numpy takes 32-bit seeds
    ema: float = ranged(0.0, at_least=0, below=1)  # EMA decay of the generator weights; 0 = off
    constant_epochs: int = ranged(100, at_least=0)  # epochs schedule: epochs at the full
                                     # rate [niter]
    decay_epochs: int = ranged(100, at_least=0)  # then epochs over which it falls to 0
                                     # [niter_decay]; epoch e (from 0) trains at
                                     # 1 - max(0, e - constant) / decay
    precision: Precision = "fp32"
    fused_adam: bool = True          # Adam's fused kernel (CPU, CUDA): faster; false = torch's
                                     # default implementation, as the official code builds it
    channels_last: bool = True       # CPU training activations channels-last where a method
                                     # keeps them so (SPADE): faster; false = the contiguous
                                     # layout of the official code (other float rounding)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = ranged(10, at_least=1)  # steps between logged scalars
    sample_every: int = ranged(200, at_least=1)  # steps between refreshes of samples/, index.html
    checkpoint_every: int = ranged(500, at_least=1)  # steps between checkpoints
    num_samples: int = ranged(4, at_least=1)  # rows on the samples page
    tensorboard: bool = True         # write TensorBoard scalars and grids when available


@dataclass
class Config:
    """Everything a run needs; saved as ``config.yaml`` in the run directory.

    Built from a raw mapping by :func:`condsynth.registry.parse_config`, which knows each
    method's own ``model`` dataclass (this module imports nothing of condsynth).
    """

    method: str
    model: Any                       # the method's registered config dataclass
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {"condition": ConditionConfig, "data": DataConfig,
                             "train": TrainConfig}


def sections_from_dict(raw: dict[str, Any], model_cls: type, where: str) -> Config:
    """A :class:`Config` from a raw mapping whose method's model dataclass is ``model_cls``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, found {type(raw).__name__}")
    if "method" not in raw:
        raise ConfigError(f"{where}: the key 'method' is missing")
    raw = migrate(raw, where)
    known = {f.name for f in dataclasses.fields(Config)}
    _reject_unknown(raw, known, where)
    sections = {name: from_dict(cls, raw.get(name) or {}, f"{where}: {name}")
                for name, cls in SECTIONS.items()}
    return Config(method=str(raw["method"]),
                  model=from_dict(model_cls, raw.get("model") or {}, f"{where}: model"),
                  **sections)


def migrate(raw: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Bring a raw config of an older format to the current one (a new dict).

    Format 1 called the condition section ``label`` and said "the condition is an image" with
    ``num_classes: 0`` (and ``source_channels``). The ``label`` name is still read, in files
    and in ``label.key=value`` overrides, with that meaning.
    """
    version = raw.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ConfigError(f"{where}: format_version {version!r} is not supported "
                          f"(this condsynth reads versions 1 to {FORMAT_VERSION})")
    raw = dict(raw)
    legacy = raw.pop("label", None)
    if legacy is not None:
        if not isinstance(legacy, dict):
            raise ConfigError(f"{where}: label: expected a mapping, found {legacy!r}")
        condition = dict(raw.get("condition") or {})
        legacy = dict(legacy)
        if "source_channels" in legacy:
            condition["image_channels"] = legacy.pop("source_channels")
        if legacy.get("num_classes") == 0:
            legacy["num_classes"] = None
            condition["kind"] = "image"
        elif legacy.get("num_classes") is not None and "kind" not in legacy:
            condition["kind"] = "label_map"
        condition.update(legacy)
        raw["condition"] = condition
    raw["format_version"] = FORMAT_VERSION
    return raw


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
    for name, value in values.items():
        check_range(fields[name], value, f"{where}.{name}")
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
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        key_type, value_type = args or (str, Any)
        return {_coerce(key_type, k, f"{where}"): _coerce(value_type, v, f"{where}.{k}")
                for k, v in value.items()}
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


def config_yaml(config: Config) -> str:
    """The config as YAML text, every field written out."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(config_yaml(config))
