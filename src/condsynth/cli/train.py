"""``condsynth train``: settings from --config, then the flags, then ``key=value`` overrides."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from condsynth.cli.common import add_config_flag, add_device_flag, add_overrides, add_quiet_flag
from condsynth.config import PRECISIONS
from condsynth.errors import CondsynthError, ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth train``."""
    p = subparsers.add_parser(
        "train", help="train a method on a dataset folder",
        description="Train a method. Settings come from --config (a YAML file or preset name), "
        "then the flags, then key=value overrides such as train.lr_g=1e-4 or model.ngf=32. "
        "Unknown keys are errors.")
    p.add_argument("--method", help="registered method (pix2pix, pix2pixhd, spade, ...)")
    add_config_flag(p, "YAML config file or preset name")
    p.add_argument("--data", help="dataset folder (layout detected, or data.layout=...)")
    p.add_argument("--run", required=True, help="run directory to write (or resume)")
    p.add_argument("--max-steps", type=int, help="training steps (iterations)")
    p.add_argument("--size", type=int, help="training resolution (sets data.load_size and "
                   "data.crop_size)")
    p.add_argument("--batch-size", type=int, help="batch size per process")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--precision", choices=PRECISIONS, help="mixed precision")
    p.add_argument("--instance", dest="instance", action="store_true", default=None,
                   help="use instance maps (default: when the dataset has them)")
    p.add_argument("--no-instance", dest="instance", action="store_false",
                   help="ignore instance maps")
    p.add_argument("--resume", action="store_true", help="continue the run in --run exactly")
    p.add_argument("--overwrite", action="store_true", help="start anew in an existing --run")
    p.add_argument("--init-from", metavar="RUN_DIR", help="start from another run's weights "
                   "(fine-tuning; pix2pixHD: a local-enhancer run from its global run)")
    add_device_flag(p)
    add_quiet_flag(p)
    add_overrides(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from condsynth.pipeline import is_pipeline_file, is_pipeline_run
    from condsynth.train import prepare_config, train

    if ((args.config and is_pipeline_file(args.config))
            or (args.resume and not args.config and is_pipeline_run(args.run))):
        return train_pipeline(args)
    if not args.resume and not args.data and not args.config:
        raise ConfigError("no dataset: pass --data DIR (for example a folder made by "
                          "`condsynth data procedural --out DIR`)")
    config = prepare_config(training_config(args))
    run = Path(args.run)
    result = train(config, run, resume=args.resume, progress=not args.quiet,
                   init_from=args.init_from, overwrite=args.overwrite)
    print(f"trained {config.method} to step {result.step} in {result.seconds:.0f} s; "
          f"samples: {run / 'index.html'}")
    return 0


def train_pipeline(args: argparse.Namespace) -> int:
    """``condsynth train --config PIPELINE``: the stages in order (see condsynth.pipeline)."""
    from condsynth.pipeline import load_pipeline, train_pipeline

    for flag, value in (("--method", args.method), ("--init-from", args.init_from)):
        if value:
            raise ConfigError(f"{flag} does not apply to a pipeline: each stage names its own "
                              "method and starting networks. Fix: drop it (set a stage's "
                              "settings with STAGE.section.key=value).")
    description = load_pipeline(args.config) if args.config else None
    results = train_pipeline(description, args.run, flag_overrides(args) + list(args.overrides),
                             resume=args.resume, overwrite=args.overwrite,
                             progress=not args.quiet)
    for r in results:
        print(f"stage {r.name}: {r.status}, step {r.step}")
    print(f"trained the pipeline in {args.run}; sample it with `condsynth sample {args.run} "
          "--out DIR`")
    return 0


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The common training flags as ``section.key=value`` overrides."""
    out = []
    if getattr(args, "data", None):
        out.append(f"data.root={json.dumps(str(args.data))}")
    if getattr(args, "max_steps", None) is not None:
        out.append(f"train.max_steps={args.max_steps}")
    if getattr(args, "size", None) is not None:
        out += [f"data.load_size={args.size}", f"data.crop_size={args.size}"]
    if getattr(args, "batch_size", None) is not None:
        out.append(f"train.batch_size={args.batch_size}")
    if getattr(args, "seed", None) is not None:
        out.append(f"train.seed={args.seed}")
    if getattr(args, "device", None):
        out.append(f"train.device={args.device}")
    if getattr(args, "precision", None):
        out.append(f"train.precision={args.precision}")
    if getattr(args, "instance", None) is not None:
        out.append(f"label.use_instance={str(args.instance).lower()}")
    return out


def training_config(args: argparse.Namespace) -> Any:
    """The run's config: the resumed run's, or --config / the method's defaults, then the
    flags and overrides."""
    from condsynth import checkpoint
    from condsynth.config import apply_overrides
    from condsynth.presets import load_preset_raw
    from condsynth.registry import default_config, parse_config

    overrides = flag_overrides(args) + list(args.overrides)
    if args.resume:
        config = checkpoint.read_config(args.run)
        check_resume_flags(args, config)
        if (args.max_steps not in (None, config.train.max_steps)
                and config.train.decay_start < 1):
            print(f"condsynth: note: the learning rate decays linearly over the last "
                  f"{1 - config.train.decay_start:.0%} of --max-steps; with --max-steps "
                  f"{args.max_steps} instead of {config.train.max_steps} the schedule is "
                  "stretched, so the run is not the one a straight run would have been.",
                  file=sys.stderr)
        raw = config.to_dict()
    elif args.config:
        raw = load_preset_raw(args.config)
        if args.method:
            raw["method"] = args.method
    else:
        raw = default_config(args.method or "pix2pix").to_dict()
        raw["condition"]["num_classes"] = None
    config = parse_config(apply_overrides(raw, overrides), where="configuration")
    if not args.resume and args.instance is None and config.data.root:
        config.condition.use_instance = (config.condition.kind == "label_map"
                                         and dataset_has_instances(config.data.root,
                                                                   config.data.layout))
    return config


def check_resume_flags(args: argparse.Namespace, config: Any) -> None:
    """``--resume`` continues the run's own config: a --method or --config that would be
    ignored is an error (key=value overrides still apply)."""
    if args.method and args.method != config.method:
        raise ConfigError(f"--resume continues the {config.method} run in {args.run}, but "
                          f"--method {args.method} was given. Fix: drop --method, or start a "
                          "new run (another --run, or --overwrite without --resume).")
    if args.config:
        raise ConfigError(f"--resume continues with the run's own {args.run}/config.yaml; "
                          f"--config {args.config} would be ignored. Fix: drop --config "
                          "(change single settings with key=value overrides).")


def dataset_has_instances(root: str, layout: str) -> bool:
    """Whether every training pair of the dataset comes with an instance map."""
    from condsynth.data.layouts import IMAGE_CONDITION_LAYOUTS, discover

    try:
        resolved, samples = discover(root, layout, "train", use_instance=False)
    except CondsynthError:
        return False
    return bool(samples) and resolved not in IMAGE_CONDITION_LAYOUTS and all(
        s.instance is not None for s in samples)
