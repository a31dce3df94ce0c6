"""Pipelines: a run made of stage runs, trained stage by stage and sampled end to end.

Some systems generate in stages that a person can look at and edit: S2-GAN draws surface
normals and then paints them; attributes become a sketch, a sharper sketch, then a face. A
*pipeline* describes such a system in one YAML file::

    pipeline: s2gan                 # a name: marks the file as a pipeline
    inputs: []                      # names of external inputs of the chain (e.g. attributes)
    stages:                         # trained in this order, each an ordinary run directory
      - name: structure
        config: s2gan_structure_cpu     # preset, YAML file (relative to this one) or mapping
        overrides: [data.direction=BtoA]   # key=value, as on the command line
      - name: style
        config: s2gan_style_cpu
        init_from: [{stage: estimator}]    # start from an earlier stage's networks
      - name: joint
        config: s2gan_joint_cpu
        init_from:                         # networks renamed: {theirs: ours}
          - {stage: structure, networks: {generator: structure_generator}}
          - {stage: style}
    chain:                          # what `sample` / `synthesize` run, in order
      - {stage: structure, weights: {stage: joint, networks: {structure_generator: generator}}}
      - {stage: style, inputs: {cond: structure}}

A pipeline run directory holds ``pipeline.yaml`` (the resolved description: every stage's whole
config) and one ordinary run directory per stage, ``<run>/<stage>/``. Training runs the stages
in order: a finished stage is skipped, a stopped one resumes exactly, a new one starts (from
the networks ``init_from`` names). Each stage has its own data settings, so a stage trains on
pairs made from the dataset (the painter on real normals and images), not on the output of the
stage before; a later stage may take several stages' networks and train them together (joint
fine-tuning). Sampling runs the ``chain``: each step's ``inputs`` map a keyword of the stage's
``generate`` (``cond``, ``z``, ``style``, or any keyword the method takes) to the output of an
earlier step or to an external input ``input:NAME``; a spatial input is resized to the size the
stage was trained at. ``weights`` takes the named networks from another stage's run when that
run has them (the jointly fine-tuned ones), and the page says so.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor

from condsynth.config import SECTIONS, apply_overrides, load_yaml
from condsynth.errors import ConfigError

if TYPE_CHECKING:
    from condsynth.methods.base import Method

PIPELINE_FILE = "pipeline.yaml"
FORMAT_VERSION = 1
INPUT_PREFIX = "input:"
_RESERVED = {"method", "model", *SECTIONS}       # a stage named so would shadow overrides


@dataclass
class NetworkSource:
    """Networks taken from another stage's run: ``networks`` maps its names to the names of
    the stage that takes them (None: every network of the same name)."""

    stage: str
    networks: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "networks": self.networks}


@dataclass
class Stage:
    """One stage: an ordinary run trained from ``config`` (a whole raw config mapping)."""

    name: str
    config: dict[str, Any]
    init_from: list[NetworkSource] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config,
                "init_from": [s.to_dict() for s in self.init_from]}


@dataclass
class ChainStep:
    """One step of sampling: ``stage``'s ``generate`` with ``inputs`` (keyword → a stage name
    or ``input:NAME``), optionally with networks ``weights`` from another stage's run."""

    stage: str
    inputs: dict[str, str] = field(default_factory=dict)
    weights: NetworkSource | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "inputs": self.inputs,
                "weights": None if self.weights is None else self.weights.to_dict()}


@dataclass
class Pipeline:
    """A pipeline description (see the module docstring)."""

    name: str
    stages: list[Stage]
    chain: list[ChainStep]
    inputs: list[str] = field(default_factory=list)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"pipeline {self.name} has no stage '{name}' (its stages: "
                          f"{', '.join(s.name for s in self.stages)})")

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.name, "format_version": FORMAT_VERSION, "inputs": self.inputs,
                "stages": [s.to_dict() for s in self.stages],
                "chain": [c.to_dict() for c in self.chain]}


# ----------------------------------------------------------------------------- reading


def pipeline_presets() -> list[str]:
    """The names of the pipeline descriptions shipped with condsynth (``presets/pipelines``)."""
    folder = _pipeline_folder()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _pipeline_folder() -> Path:
    from condsynth.presets import _preset_folder

    return _preset_folder() / "pipelines"


def pipeline_path(name_or_path: str | Path) -> Path:
    """A pipeline description: a file, or the name of one shipped with condsynth."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = _pipeline_folder() / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(f"pipeline '{name_or_path}' is neither a file nor a shipped pipeline "
                      f"({', '.join(pipeline_presets()) or 'none'})")


def is_pipeline_file(path: str | Path) -> bool:
    """Whether a ``--config`` value names a pipeline description (a YAML file with a
    ``pipeline`` key, or a shipped pipeline's name), not a run config or preset."""
    try:
        raw = load_yaml(pipeline_path(path))
    except ConfigError:
        return False
    return "pipeline" in raw


def is_pipeline_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` is a pipeline run (holds ``pipeline.yaml``)."""
    return (Path(run_dir) / PIPELINE_FILE).is_file()


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline description (a file or a shipped name); every stage's config is resolved
    to a whole raw mapping (presets and ``extends`` followed, ``overrides`` applied)."""
    path = pipeline_path(path)
    return parse_pipeline(load_yaml(path), base=path.parent, where=str(path))


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, found {value!r}")
    return value


def _keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known keys: "
                          f"{', '.join(sorted(allowed))})")


def _source(raw: Any, where: str) -> NetworkSource:
    raw = _mapping(raw, where)
    _keys(raw, {"stage", "networks"}, where)
    if not isinstance(raw.get("stage"), str):
        raise ConfigError(f"{where}: 'stage' must name a stage")
    networks = raw.get("networks")
    if networks is not None:
        networks = _mapping(networks, f"{where}.networks")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in networks.items()):
            raise ConfigError(f"{where}.networks: expected names of networks, "
                              f"{{theirs: ours}}, found {networks!r}")
    return NetworkSource(raw["stage"], None if networks is None else dict(networks))


def _stage_config(raw: Any, base: Path | None, where: str) -> dict[str, Any]:
    """A stage's whole raw config: its method's defaults, then the preset, file or mapping."""
    from condsynth.presets import _base_path, deep_merge, load_preset_raw
    from condsynth.registry import default_config

    if isinstance(raw, dict):
        loaded = copy.deepcopy(raw)
    elif not isinstance(raw, str):
        raise ConfigError(f"{where}: 'config' must be a preset name, a YAML file or a mapping")
    else:
        path = None
        if base is not None:
            try:
                path = _base_path(base / PIPELINE_FILE, raw)
            except ConfigError:
                path = None
        loaded = load_preset_raw(path or raw)
    if not isinstance(loaded.get("method"), str):
        raise ConfigError(f"{where}: the stage's config names no method (method: ...)")
    return deep_merge(default_config(loaded["method"]).to_dict(), loaded)


def parse_pipeline(raw: dict[str, Any], base: Path | None = None,
                   where: str = "pipeline") -> Pipeline:
    """A :class:`Pipeline` from a raw mapping, strictly checked: unknown keys, stages named
    twice, references to unknown or later stages and stage configs that do not parse are
    errors. ``base`` is the folder that relative ``config`` files are found from."""
    from condsynth.registry import parse_config

    _keys(raw, {"pipeline", "format_version", "inputs", "stages", "chain"}, where)
    if raw.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise ConfigError(f"{where}: format_version {raw['format_version']!r} is not "
                          f"supported (this condsynth reads {FORMAT_VERSION})")
    inputs = raw.get("inputs") or []
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise ConfigError(f"{where}: 'inputs' must be a list of names")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError(f"{where}: 'stages' must be a non-empty list of stages "
                          "({name, config, overrides, init_from})")
    stages: list[Stage] = []
    for i, item in enumerate(stages_raw):
        at = f"{where}: stages[{i}]"
        item = _mapping(item, at)
        _keys(item, {"name", "config", "overrides", "init_from"}, at)
        name = item.get("name")
        if not isinstance(name, str) or not name.isidentifier() or name in _RESERVED:
            raise ConfigError(f"{at}: 'name' must be a plain identifier other than "
                              f"{', '.join(sorted(_RESERVED))}, found {name!r}")
        if any(s.name == name for s in stages):
            raise ConfigError(f"{at}: a second stage named '{name}'")
        if "config" not in item:
            raise ConfigError(f"{at}: 'config' is missing (a preset name, a YAML file or a "
                              "mapping)")
        config = _stage_config(item["config"], base, f"{at}.config")
        overrides = item.get("overrides") or []
        if not isinstance(overrides, list):
            raise ConfigError(f"{at}.overrides: expected a list of key=value")
        config = apply_overrides(config, [str(o) for o in overrides])
        parse_config(copy.deepcopy(config), where=f"{at} ({name})")     # fail early
        sources = [_source(s, f"{at}.init_from[{j}]")
                   for j, s in enumerate(item.get("init_from") or [])]
        for source in sources:
            if not any(s.name == source.stage for s in stages):
                raise ConfigError(f"{at}: init_from names '{source.stage}', which is not an "
                                  "earlier stage. Fix: list the stages in training order.")
        stages.append(Stage(name, config, sources))
    names = [s.name for s in stages]
    chain_raw = raw.get("chain")
    if chain_raw is None:                 # default: every stage, each fed by the one before
        chain_raw = [{"stage": n} if i == 0 else {"stage": n, "inputs": {"cond": names[i - 1]}}
                     for i, n in enumerate(names)]
    if not isinstance(chain_raw, list) or not chain_raw:
        raise ConfigError(f"{where}: 'chain' must be a non-empty list of steps")
    chain: list[ChainStep] = []
    for i, item in enumerate(chain_raw):
        at = f"{where}: chain[{i}]"
        item = _mapping(item, at)
        _keys(item, {"stage", "inputs", "weights"}, at)
        if item.get("stage") not in names:
            raise ConfigError(f"{at}: 'stage' must name a stage ({', '.join(names)}), found "
                              f"{item.get('stage')!r}")
        step_inputs = {str(k): str(v) for k, v in _mapping(item.get("inputs"),
                                                           f"{at}.inputs").items()}
        done = [c.stage for c in chain]
        for key, value in step_inputs.items():
            if value.startswith(INPUT_PREFIX):
                if value[len(INPUT_PREFIX):] not in inputs:
                    raise ConfigError(f"{at}.inputs.{key}: {value} is not one of the "
                                      f"pipeline's inputs ({', '.join(inputs) or 'none'})")
            elif value not in done:
                raise ConfigError(f"{at}.inputs.{key}: '{value}' is not an earlier step of the "
                                  f"chain ({', '.join(done) or 'none'}) nor input:NAME")
        weights = None
        if item.get("weights") is not None:
            weights = _source(item["weights"], f"{at}.weights")
            if weights.stage not in names:
                raise ConfigError(f"{at}.weights: no stage '{weights.stage}'")
        chain.append(ChainStep(item["stage"], step_inputs, weights))
    name = raw.get("pipeline")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: 'pipeline' must be the pipeline's name")
    return Pipeline(name, stages, chain, list(inputs))


def read_pipeline(run_dir: str | Path) -> Pipeline:
    """The description saved in a pipeline run."""
    path = Path(run_dir) / PIPELINE_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a pipeline run: {PIPELINE_FILE} is missing. Fix: "
                          "point at a folder written by `condsynth train --config PIPELINE`.")
    return parse_pipeline(load_yaml(path), where=str(path))


def with_overrides(pipeline: Pipeline, overrides: Sequence[str]) -> Pipeline:
    """The pipeline with ``key=value`` overrides applied: ``STAGE.section.key=value`` to that
    stage, ``section.key=value`` to every stage."""
    out = copy.deepcopy(pipeline)
    names = {s.name for s in out.stages}
    for item in overrides:
        head = item.split("=", 1)[0].split(".", 1)[0].strip()
        targets = [out.stage(head)] if head in names else out.stages
        text = item.split(".", 1)[1] if head in names else item
        if head not in names and head not in _RESERVED:
            raise ConfigError(f"override '{item}': '{head}' is neither a stage "
                              f"({', '.join(sorted(names))}) nor a config section "
                              f"({', '.join(sorted(_RESERVED))})")
        for stage in targets:
            stage.config = apply_overrides(stage.config, [text])
    return parse_pipeline(out.to_dict(), where=f"pipeline {pipeline.name}")


def _flat(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"section.key": value}`` (an empty mapping is a value)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_settings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``key=value`` of every setting of a stage's config that ``after`` changes, except
    ``train.max_steps`` (the one a started stage follows on resume)."""
    old, new = _flat(before), _flat(after)
    return [f"{k}={new.get(k)}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and k != "train.max_steps"]


def stage_dir(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / stage


# ----------------------------------------------------------------------------- training


@dataclass
class StageResult:
    name: str
    status: str               # "trained", "resumed", "finished before"
    step: int


def stage_step(run: Path) -> int | None:
    """The step a stage's run has reached (None: no checkpoint yet)."""
    from condsynth import checkpoint

    if not (run / checkpoint.TRAIN_STATE).is_file():
        return None
    return int(checkpoint.read_train_state(run)["step"])


def network_loader(run_dir: Path, sources: Sequence[NetworkSource]) -> Callable[[Method],
                                                                                list[str]]:
    """What ``train(init_from=...)`` calls to start a stage from earlier stages' networks."""

    def load(method: Method) -> list[str]:
        copied = []
        for source in sources:
            got = method.initialize_from(stage_dir(run_dir, source.stage), source.networks)
            copied += [f"{name} (from {source.stage})" for name in got]
        return copied

    return load


def train_pipeline(pipeline: Pipeline, run_dir: str | Path, overrides: Sequence[str] = (),
                   resume: bool = False, overwrite: bool = False,
                   progress: bool = True) -> list[StageResult]:
    """Train every stage of ``pipeline`` into ``run_dir``, in order.

    A new run writes ``pipeline.yaml``. Running again with the same description continues:
    finished stages are skipped, a stopped stage resumes exactly, the rest start. A different
    description is refused unless ``resume`` (the run's own description, ``overrides``
    applied: a longer schedule continues finished stages) or ``overwrite`` (start anew).
    """
    import shutil

    from condsynth import checkpoint
    from condsynth.registry import parse_config
    from condsynth.train import prepare_config, train

    run_dir = Path(run_dir)
    saved_path = run_dir / PIPELINE_FILE
    ignored: dict[str, list[str]] = {}
    if resume:
        saved = read_pipeline(run_dir)
        pipeline = with_overrides(saved, overrides)
        ignored = {s.name: changed_settings(saved.stage(s.name).config, s.config)
                   for s in pipeline.stages}
    else:
        pipeline = with_overrides(pipeline, overrides)
        if saved_path.is_file() and not overwrite:
            if read_pipeline(run_dir).to_dict() != pipeline.to_dict():
                raise ConfigError(f"{run_dir} holds the pipeline run described by its "
                                  f"{PIPELINE_FILE}, and this description differs from it. "
                                  "Fix: --resume to continue with the run's own description "
                                  "(key=value overrides still apply), --overwrite to start "
                                  "again, or another --run.")
        elif overwrite and run_dir.is_dir():
            for stage in pipeline.stages:
                if stage_dir(run_dir, stage.name).is_dir():
                    shutil.rmtree(stage_dir(run_dir, stage.name))
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = saved_path.with_name(f".{PIPELINE_FILE}.tmp")
    tmp.write_text(yaml.safe_dump(pipeline.to_dict(), sort_keys=False))
    tmp.replace(saved_path)

    results = []
    for index, stage in enumerate(pipeline.stages):
        run = stage_dir(run_dir, stage.name)
        step = stage_step(run)
        where = f"stage {index + 1}/{len(pipeline.stages)} '{stage.name}'"
        if step is None:
            config = prepare_config(parse_config(copy.deepcopy(stage.config), where=where))
            if progress:
                print(f"{where}: training {config.method} ({config.train.max_steps} steps)")
            leftover = run.is_dir() and checkpoint.holds_run(run)
            result = train(config, run, progress=progress, overwrite=leftover,
                           init_from=network_loader(run_dir, stage.init_from)
                           if stage.init_from else None)
            results.append(StageResult(stage.name, "trained", result.step))
            continue
        # The run's own config (what prepare_config resolved from the data), with the
        # schedule the description now asks for.
        if resume and ignored.get(stage.name):
            print(f"condsynth: warning: {where} has started (step {step}): only "
                  "train.max_steps applies to it on resume; these settings are ignored: "
                  f"{', '.join(ignored[stage.name])}", file=sys.stderr)
        config = checkpoint.read_config(run)
        wanted = parse_config(copy.deepcopy(stage.config), where=where)
        config.train.max_steps = wanted.train.max_steps
        if step >= config.train.max_steps:
            if progress:
                print(f"{where}: finished before (step {step}); skipped")
            results.append(StageResult(stage.name, "finished before", step))
            continue
        if progress:
            print(f"{where}: resuming {config.method} at step {step} of "
                  f"{config.train.max_steps}")
        result = train(config, run, resume=True, progress=progress)
        results.append(StageResult(stage.name, "resumed", result.step))
    return results


# ----------------------------------------------------------------------------- sampling


@dataclass
class ChainResult:
    """Every step's output, in chain order: (B, C, H, W) in [-1, 1] by stage name."""

    outputs: dict[str, Tensor]
    notes: list[str]


def load_chain(run_dir: str | Path, device: str = "auto") -> tuple[Pipeline, dict[str, Method],
                                                                   list[str]]:
    """The pipeline of a run and the method of every chain step, ready to generate (with the
    ``weights`` of a step taken from the other stage's run when it has them), and notes on
    what was loaded."""
    from condsynth import checkpoint
    from condsynth.api import load

    run_dir = Path(run_dir)
    pipeline = read_pipeline(run_dir)
    methods: dict[str, Method] = {}
    notes = []
    for step in pipeline.chain:
        run = stage_dir(run_dir, step.stage)
        if stage_step(run) is None and not (run / checkpoint.CONFIG).is_file():
            raise ConfigError(f"stage '{step.stage}' of {run_dir} has not been trained. Fix: "
                              f"condsynth train --resume --run {run_dir}")
        method = load(run, device=device)
        source = step.weights
        if source is not None and stage_step(stage_dir(run_dir, source.stage)) is not None:
            got = method.initialize_from(stage_dir(run_dir, source.stage), source.networks)
            notes.append(f"{step.stage}: {', '.join(got)} from stage {source.stage}")
        elif source is not None:
            notes.append(f"{step.stage}: its own weights (stage {source.stage} is not trained)")
        methods[step.stage] = method.eval()
    return pipeline, methods, notes


def _fit(value: Tensor, method: Method) -> Tensor:
    """A spatial input resized to the size ``method`` was trained at (bilinear)."""
    if value.dim() != 4:
        return value
    height, width = method.config.data.crop_hw
    if tuple(value.shape[-2:]) == (height, width):
        return value
    return F.interpolate(value, size=(height, width), mode="bilinear", align_corners=False)


def run_chain(pipeline: Pipeline, methods: dict[str, Method], count: int,
              inputs: dict[str, Tensor] | None = None, given: dict[str, Tensor] | None = None,
              batch_size: int = 64) -> ChainResult:
    """Run the chain for ``count`` samples from torch's global RNG (seed it first).

    ``inputs`` holds the external inputs (``input:NAME``), ``count`` rows each; ``given`` holds
    pictures that stand for a stage's output (a user's edited normals or sketch), so the chain
    goes on from them.
    """
    inputs = dict(inputs or {})
    given = dict(given or {})
    missing = [n for n in pipeline.inputs if n not in inputs]
    if missing:
        hint = ("--attributes \"NAME=1,...\" (attributes not named are -1), or `condsynth "
                "sample RUN`, which draws them" if missing == ["attributes"]
                else f"--input {missing[0]}=V1,V2,...")
        raise ConfigError(f"pipeline {pipeline.name} takes the inputs "
                          f"{', '.join(pipeline.inputs)}; {', '.join(missing)} not given. "
                          f"Fix: {hint}.")
    for name, value in {**inputs, **given}.items():
        if value.shape[0] != count:
            raise ConfigError(f"{name} holds {value.shape[0]} rows for {count} samples")
    unknown = set(given) - {s.stage for s in pipeline.chain}
    if unknown:
        raise ConfigError(f"no chain step named {', '.join(sorted(unknown))} (steps: "
                          f"{', '.join(s.stage for s in pipeline.chain)})")
    outputs: dict[str, list[Tensor]] = {s.stage: [] for s in pipeline.chain}
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        done: dict[str, Tensor] = {}
        for step in pipeline.chain:
            if step.stage in given:
                done[step.stage] = given[step.stage][start:start + n]
                continue
            method = methods[step.stage]
            kwargs: dict[str, Any] = {}
            for key, source in step.inputs.items():
                value = (inputs[source[len(INPUT_PREFIX):]][start:start + n]
                         if source.startswith(INPUT_PREFIX) else done[source])
                kwargs[key] = _fit(value.to(method.device), method)
            if "cond" not in kwargs and "z" not in kwargs:
                kwargs["batch_size"] = n
            done[step.stage] = method.generate(**kwargs).cpu()
        for name, value in done.items():
            outputs[name].append(value.cpu())
    return ChainResult({k: torch.cat(v) for k, v in outputs.items()}, [])


def write_chain_page(result: ChainResult, out: str | Path, title: str,
                     notes: Sequence[str] = ()) -> Path:
    """Every step's pictures side by side: ``<stage>_NNNN.png``, ``<stage>_grid.png`` and an
    ``index.html`` with one row per sample and one column per stage. Returns the page."""
    from condsynth.data.dataset import tensor_to_image
    from condsynth.pages import save_png, write_table_page
    from condsynth.sampling import grid

    out = Path(out)
    names = list(result.outputs)
    count = next(iter(result.outputs.values())).shape[0]
    rows = [["all", *[f"{name}_grid.png" for name in names]]]
    for name, images in result.outputs.items():
        save_png(grid(images, min(count, 8)), out / f"{name}_grid.png")
        for i in range(count):
            save_png(tensor_to_image(images[i]), out / f"{name}_{i:04d}.png")
    rows += [[str(i), *[f"{name}_{i:04d}.png" for name in names]] for i in range(count)]
    write_table_page(out / "index.html", title, ["#", *names], rows,
                     [*notes, *result.notes], image_scale=3)
    (out / "chain.json").write_text(json.dumps({"stages": names, "count": count}))
    return out / "index.html"


def attribute_stage(pipeline: Pipeline) -> str | None:
    """The first chain step fed ``input:attributes`` (None: the chain takes no attributes)."""
    for step in pipeline.chain:
        if INPUT_PREFIX + "attributes" in step.inputs.values():
            return step.stage
    return None


def attribute_names(pipeline: Pipeline, run_dir: str | Path) -> list[str] | None:
    """The attribute names of the first chain step fed ``input:attributes`` (from its stage
    run's config), or None when no step takes the ``attributes`` input."""
    from condsynth import checkpoint

    stage = attribute_stage(pipeline)
    if stage is None:
        return None
    return list(checkpoint.read_config(stage_dir(run_dir, stage)).condition.attributes)


def random_attributes(names: Sequence[str], count: int, seed: int) -> Tensor:
    """``count`` attribute vectors, each attribute +1 or -1 with equal odds, from
    ``torch.Generator().manual_seed(seed)``."""
    generator = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (count, len(names)), generator=generator)
    return bits.float() * 2 - 1


def sample_attributes(pipeline: Pipeline, run_dir: str | Path, count: int,
                      seed: int) -> tuple[list[str], Tensor, str]:
    """Attribute vectors for ``condsynth sample`` of a chain that takes attributes: rows of the
    attribute table the first attribute stage trained on (its ``data`` settings, split
    ``train``), drawn with replacement from ``torch.Generator().manual_seed(seed)``, so that
    they are combinations the data holds (one class of a one-hot group); where that table
    cannot be read or its columns differ, :func:`random_attributes`. Returns the names, the
    (count, A) vectors and a note saying which."""
    from condsynth import checkpoint
    from condsynth.data.sources import load_source
    from condsynth.errors import CondsynthError

    stage = attribute_stage(pipeline)
    if stage is None:
        raise ConfigError(f"the pipeline {pipeline.name} takes no attributes input")
    config = checkpoint.read_config(stage_dir(run_dir, stage))
    names = list(config.condition.attributes)
    try:
        source = load_source(config.data, "train")
        table = source.attributes
        why = ("its columns differ from the run's attributes"
               if table is None or list(source.attribute_names) != names else "")
    except CondsynthError as err:
        table, why = None, str(err).split(". Fix:")[0]
    if table is not None and not why:
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randint(0, len(table), (count,), generator=generator)
        return names, torch.from_numpy(table[rows.numpy()]).float(), (
            f"attributes: rows of the training table of stage {stage} ({config.data.root}), "
            f"drawn at random (seed {seed}); as --attributes (the others -1):")
    return names, random_attributes(names, count, seed), (
        f"attributes: each +1 or -1 with equal odds (seed {seed}), since the training table "
        f"of stage {stage} could not be used ({why}); as --attributes (the others -1):")


def attribute_text(names: Sequence[str], vector: Tensor) -> str:
    """One vector as ``--attributes`` text: ``NAME=V`` of every attribute not at -1 (the
    ``--absent`` default)."""
    return ",".join(f"{name}={float(v):g}" for name, v in zip(names, vector.tolist(),
                                                             strict=True) if float(v) != -1)


def sample_pipeline(run_dir: str | Path, count: int, out: str | Path, seed: int = 0,
                    inputs: dict[str, Tensor] | None = None,
                    given: dict[str, Tensor] | None = None, device: str = "auto",
                    batch_size: int = 64, draw_attributes: bool = False) -> Path:
    """``condsynth sample`` / ``synthesize`` of a pipeline run: the chain for ``count`` samples
    with every intermediate written side by side; returns the page. ``draw_attributes``: a
    chain that takes ``attributes`` and was given none gets :func:`sample_attributes`' (listed
    on the page)."""
    if count < 1:
        raise ConfigError(f"--count {count}: give at least 1")
    pipeline, methods, notes = load_chain(run_dir, device)
    inputs = dict(inputs or {})
    drawn = []
    if draw_attributes and "attributes" not in inputs and attribute_stage(pipeline) is not None:
        names, inputs["attributes"], how = sample_attributes(pipeline, run_dir, count, seed)
        drawn = [how, *[f"sample {i}: {attribute_text(names, v) or '(all -1)'}"
                   for i, v in enumerate(inputs["attributes"])]]
    torch.manual_seed(seed)
    result = run_chain(pipeline, methods, count, inputs, given, batch_size)
    notes = [f"pipeline {pipeline.name}: {' → '.join(result.outputs)}, seed {seed}",
             *[f"{name} given, not generated" for name in (given or {})], *notes, *drawn]
    resized = [s.stage for s in pipeline.chain for k, v in s.inputs.items()
               if not v.startswith(INPUT_PREFIX) and v in result.outputs
               and result.outputs[v].dim() == 4
               and tuple(result.outputs[v].shape[-2:]) != methods[s.stage].config.data.crop_hw]
    if resized:
        notes.append(f"inputs resized (bilinear) to the size {', '.join(resized)} trained at")
    return write_chain_page(result, out, f"condsynth pipeline: {Path(run_dir).name}", notes)


def picture_input(pipeline: Pipeline, run_dir: str | Path, stage: str,
                  path: str | Path) -> Tensor:
    """A PNG that stands for ``stage``'s output: (1, C, H, W) in [-1, 1], greyscale when the
    stage makes one-channel pictures (``data.channels``)."""
    from condsynth import checkpoint
    from condsynth.data.dataset import image_to_tensor
    from condsynth.data.io import read_image

    if stage not in {s.stage for s in pipeline.chain}:
        raise ConfigError(f"--given {stage}=...: no chain step named {stage} (steps: "
                          f"{', '.join(s.stage for s in pipeline.chain)})")
    picture = image_to_tensor(read_image(Path(path)))[None]
    channels = checkpoint.read_config(stage_dir(run_dir, stage)).data.channels
    return picture.mean(1, keepdim=True) if channels == 1 else picture
