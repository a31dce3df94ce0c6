"""The ``condsynth`` command line: train, synthesize, data, demo, bench, import, features.

Every user-facing problem (a bad label map, an unknown config key, a missing weights file)
ends as one clear message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from condsynth.config import PRECISIONS
from condsynth.errors import CondsynthError, ConfigError
from condsynth.registry import default_config, parse_config

# Modules that add their own subcommands: each has ``add_commands(subparsers)``.
COMMAND_MODULES: list[str] = ["condsynth.metrics.commands", "condsynth.studio.commands",
                              "condsynth.toolbox_commands"]


# ----------------------------------------------------------------------------- config building


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
    from condsynth import checkpoint
    from condsynth.config import apply_overrides
    from condsynth.presets import load_preset_raw

    overrides = flag_overrides(args) + list(args.overrides)
    if args.resume:
        config = checkpoint.read_config(args.run)
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


def dataset_has_instances(root: str, layout: str) -> bool:
    """Whether every training pair of the dataset comes with an instance map."""
    from condsynth.data.layouts import IMAGE_CONDITION_LAYOUTS, discover

    try:
        resolved, samples = discover(root, layout, "train", use_instance=False)
    except CondsynthError:
        return False
    return bool(samples) and resolved not in IMAGE_CONDITION_LAYOUTS and all(
        s.instance is not None for s in samples)


# ----------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from condsynth.train import prepare_config, train

    if not args.resume and not args.data and not args.config:
        raise ConfigError("no dataset: pass --data DIR (for example a folder made by "
                          "`condsynth data procedural --out DIR`)")
    config = prepare_config(training_config(args))
    run = Path(args.run)
    if not args.resume and (run / "config.yaml").exists() and not args.overwrite:
        raise ConfigError(f"{run} already holds a run. Fix: --resume to continue it, "
                          "--overwrite to start again in it, or choose another --run.")
    result = train(config, run, resume=args.resume, progress=not args.quiet,
                   init_from=args.init_from)
    print(f"trained {config.method} to step {result.step} in {result.seconds:.0f} s; "
          f"samples: {run / 'index.html'}")
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.synthesize import synthesize_file, synthesize_folder

    method = load(args.run, device=args.device or "auto", precision=args.precision,
                  channels_last=args.channels_last)
    if args.sketch or args.sketches:
        from condsynth.autopainter_commands import synthesize_sketches

        return synthesize_sketches(method, args)
    if args.labels:
        out = synthesize_folder(method, args.labels, args.out, args.instances, args.style_image,
                                args.palette, args.seed, progress=not args.quiet)
        print(f"wrote {out / 'index.html'}")
    elif args.label:
        out = synthesize_file(method, args.label, args.out, args.instance, args.style_image,
                              args.palette, args.seed)
        print(f"wrote {out}")
    else:
        raise ConfigError("nothing to synthesize: pass --label L.png or --labels DIR (or, for "
                          "a sketch model, --sketch S.png or --sketches DIR)")
    return 0


def cmd_data_procedural(args: argparse.Namespace) -> int:
    from condsynth.data.procedural import write_dataset

    summary = write_dataset(args.out, args.count, args.size, args.seed,
                            test_count=args.test_count, progress=not args.quiet)
    print(json.dumps(summary, default=str))
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from condsynth.data.check import check_dataset

    attributes = [a.strip() for a in args.attributes.split(",")] if args.attributes else None
    report = check_dataset(args.dir, layout=args.layout, num_classes=args.num_classes,
                           palette=args.palette, labeled_per_class=args.labeled_per_class,
                           attributes=attributes, idx_prefix=args.idx_prefix)
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report.text())
    return 0 if report.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from condsynth.demo import run_demo

    page = run_demo(Path(args.out), method=args.method, steps=args.steps, size=args.size,
                    count=args.count, device=args.device, progress=not args.quiet,
                    overrides=args.overrides)
    print(f"demo finished: open {page}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if args.kind == "pix2pixhd":
        from condsynth.compat.pix2pixhd import import_pix2pixhd

        out = import_pix2pixhd(args.official_dir, args.out, vgg_weights=args.vgg_weights,
                               which_epoch=args.epoch, overwrite=args.overwrite)
    else:
        from condsynth.compat.spade import import_spade

        out = import_spade(args.official_dir, args.out, epoch=args.epoch,
                           overwrite=args.overwrite)
    print(f"imported the official {args.kind} checkpoint into {out}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from condsynth.methods.pix2pixhd import compute_features

    out = compute_features(args.run, args.data, n_clusters=args.clusters,
                           device=args.device or "auto")
    print(f"wrote the clustered instance features to {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from condsynth.bench import format_report, run_bench

    report = run_bench(method=args.method, size=args.size, batch=args.batch,
                       precision=args.precision, channels_last=args.channels_last,
                       compile=args.compile, config=args.config, overrides=args.overrides,
                       device=args.device, train_iters=args.train_iters,
                       infer_iters=args.infer_iters, skip_train=args.skip_train,
                       threads=args.threads, run=args.run)
    print(json.dumps(report) if args.json else format_report(report))
    return 0


# ----------------------------------------------------------------------------- parser


def add_fast_path_flags(p: argparse.ArgumentParser, channels_last: bool = True) -> None:
    """``--precision`` (and ``--channels-last``) of commands that run inference."""
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="inference precision: bf16 (CPU/GPU) or fp16 (GPU) is the fast path")
    if channels_last:
        p.add_argument("--channels-last", action="store_true",
                       help="channels_last weights (faster convolutions on CPUs and GPUs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="condsynth", description="Conditional image synthesis: label maps, instance maps "
        "and sketches in, pictures out (pix2pix, pix2pixHD, SPADE, Auto-painter).")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def device_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                       help="where to run (default: CUDA when available, else CPU)")

    def quiet_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("train", help="train a method on a dataset folder",
                       description="Train a method. Settings come from --config (a YAML file or "
                       "preset name), then the flags, then key=value overrides such as "
                       "train.lr_g=1e-4 or model.ngf=32. Unknown keys are errors.")
    p.add_argument("--method", help="registered method (pix2pix, pix2pixhd, spade, ...)")
    p.add_argument("--config", help="YAML config file or preset name")
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
    device_flag(p)
    quiet_flag(p)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("synthesize", help="generate pictures from label maps (or sketches) "
                       "with a trained run")
    p.add_argument("run", help="run directory")
    p.add_argument("--label", help="one label map (single-channel PNG of class ids)")
    p.add_argument("--instance", help="its instance map (Cityscapes encoding)")
    p.add_argument("--labels", help="a folder of label maps (folder mode)")
    p.add_argument("--instances", help="a folder of instance maps, paired by file name")
    p.add_argument("--style-image", help="an image whose look the output takes (methods "
                   "with a style encoder)")
    p.add_argument("--palette", help="JSON mapping colours to class ids, for RGB label maps")
    p.add_argument("--seed", type=int, help="seed for methods with random looks")
    p.add_argument("--out", required=True, help="output PNG, or folder in folder mode")
    add_fast_path_flags(p)
    from condsynth.autopainter_commands import add_synthesize_arguments

    add_synthesize_arguments(p)
    device_flag(p)
    quiet_flag(p)
    p.set_defaults(func=cmd_synthesize)

    data = sub.add_parser("data", help="make or check datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND")
    p = data_sub.add_parser("procedural", help="write the built-in procedural outdoor scenes "
                            "in the pix2pixHD layout")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--count", type=int, default=500, help="training scenes")
    p.add_argument("--test-count", type=int, default=None, help="test scenes (default 10%%)")
    p.add_argument("--size", type=int, default=128, help="scene size in pixels (square)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    quiet_flag(p)
    p.set_defaults(func=cmd_data_procedural)
    p = data_sub.add_parser("check", help="report classes, counts, sizes and every problem")
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--layout", default="auto", help="dataset layout (default: detect)")
    p.add_argument("--num-classes", type=int, help="flag label values at or above this")
    p.add_argument("--palette", help="JSON mapping colours to class ids, for RGB label maps")
    p.add_argument("--labeled-per-class", type=int, help="class data: check the semi-supervised "
                   "split keeping this many labels per class")
    p.add_argument("--attributes", help="attribute tables: report only these, comma-separated")
    p.add_argument("--idx-prefix", help="IDX files: which set of a folder holding several, "
                   "e.g. emnist-letters")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_data_check)
    from condsynth.autopainter_commands import add_data_sketches

    add_data_sketches(data_sub)

    p = sub.add_parser("demo", help="make procedural scenes, train a small model on them "
                       "(about five minutes on a CPU) and write a page of results")
    p.add_argument("--out", default="condsynth-demo", help="folder for the data and the run")
    p.add_argument("--method", default=None, help="method to train (default: the demo preset)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: preset)")
    p.add_argument("--size", type=int, default=None, help="scene size (default: preset)")
    p.add_argument("--count", type=int, default=None, help="training scenes (default: preset)")
    device_flag(p)
    quiet_flag(p)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="measure training and inference speed and memory")
    p.add_argument("--method", default="pix2pix", help="registered method")
    p.add_argument("--config", help="YAML config or preset (default: the method's defaults)")
    p.add_argument("--size", default="256x256", help="input size HxW")
    p.add_argument("--batch", type=int, default=1, help="batch size")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--train-iters", type=int, default=7, help="timed training iterations")
    p.add_argument("--infer-iters", type=int, default=10, help="timed inference passes")
    p.add_argument("--skip-train", action="store_true", help="measure inference only")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--run", help="bench this trained run directory (its config and weights)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    device_flag(p)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("import", help="turn an official pix2pixHD or SPADE checkpoint folder "
                       "into a condsynth run directory")
    p.add_argument("kind", choices=["pix2pixhd", "spade"], help="which official code made it")
    p.add_argument("official_dir", help="the experiment folder (opt.txt + latest_net_G.pth)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--epoch", default="latest", help="which <epoch>_net_G.pth to read")
    p.add_argument("--vgg-weights", help="pix2pixHD: VGG19 file recorded for training")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("features", help="pix2pixHD: encode the training set and cluster each "
                       "class's instance features (selectable looks at inference)")
    p.add_argument("run", help="a pix2pixhd run trained with model.instance_feat=true")
    p.add_argument("--data", required=True, help="its dataset folder")
    p.add_argument("--clusters", type=int, default=None, help="K-means clusters per class "
                   "(default: model.n_clusters, 10)")
    device_flag(p)
    p.set_defaults(func=cmd_features)

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from condsynth import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return args.func(args)
    except CondsynthError as err:
        print(f"condsynth: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("condsynth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
