"""Subcommands ``condsynth evaluate``, ``condsynth segmenter train`` and ``condsynth study``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from condsynth.errors import CondsynthError, ConfigError

DEFAULT_METRICS = "fid,kid,is,swd"


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the evaluation subcommands on the ``condsynth`` parser."""
    _add_evaluate(sub)
    _add_segmenter(sub)
    _add_study(sub)


def _device_and_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to run (default: CUDA when available, else CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# ----------------------------------------------------------------------------- evaluate


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="score a run (FID, KID, IS, SWD, mIoU, MS-SSIM) or two image folders",
        description="Either synthesize the test split of --data with RUN_DIR and score it, or "
        "score two folders with --real DIR --fake DIR. Writes eval.json and eval.html. FID, "
        "KID and IS need the standard FID Inception weights (pt_inception-2015-12-05-"
        "6726825d.pth): --inception-weights PATH, $CONDSYNTH_INCEPTION_WEIGHTS, or torch "
        "hub's checkpoints folder. Nothing is downloaded.")
    p.add_argument("run", nargs="?", help="run directory to evaluate (with --data)")
    p.add_argument("--data", help="dataset folder whose test split is synthesized")
    p.add_argument("--phase", help="split to use (default: test, else val)")
    p.add_argument("--max-images", type=int, help="use only the first N items of the split")
    p.add_argument("--real", help="folder of real images (folder mode)")
    p.add_argument("--fake", help="folder of generated images (folder mode)")
    p.add_argument("--labels", help="folder mode, miou: label maps of the generated images, "
                   "paired by file name")
    p.add_argument("--num-classes", type=int, help="folder mode, miou: classes of the label "
                   "maps when the segmenter does not say")
    p.add_argument("--metrics", help="comma-separated subset of fid,kid,is,swd,miou,msssim "
                   f"(default: {DEFAULT_METRICS}, plus miou when --segmenter is given)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/eval; required in folder "
                   "mode)")
    p.add_argument("--inception-weights", help="the FID Inception weights file (.pth)")
    p.add_argument("--allow-nonstandard-weights", action="store_true",
                   help="score with Inception weights other than the standard file; reports "
                   "then say the scores are not comparable with published ones")
    p.add_argument("--segmenter", help="for miou: a folder from `condsynth segmenter train`, a "
                   "TorchScript or ONNX file, or NAME[:WEIGHTS] of a registered model")
    p.add_argument("--segmenter-input", choices=["minus1_1", "0_1", "imagenet"],
                   help="value range the segmenter expects (default: [-1, 1] for files)")
    p.add_argument("--batch-size", type=int, default=8, help="images per network call")
    p.add_argument("--seed", type=int, default=0, help="seed of KID subsets, SWD and samples")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size")
    p.add_argument("--is-splits", type=int, default=10, help="Inception Score splits")
    p.add_argument("--msssim-samples", type=int, default=4,
                   help="msssim: outputs per label map (default 4)")
    p.add_argument("--msssim-labels", type=int, default=50,
                   help="msssim: label maps used (default: the first 50)")
    p.add_argument("--grid", type=int, default=8, help="rows of the page's sample grid")
    p.add_argument("--cache-dir", help="feature cache folder (default: $CONDSYNTH_CACHE or "
                   "~/.cache/condsynth)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the "
                   "feature cache")
    p.add_argument("--json", action="store_true", help="print eval.json instead of a table")
    _device_and_quiet(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from condsynth.metrics.evaluate import EvalOptions, evaluate_folders, evaluate_run
    from condsynth.metrics.report import metric_rows

    metrics = args.metrics or DEFAULT_METRICS + (",miou" if args.segmenter else "")
    options = EvalOptions(
        metrics=[m.strip().lower() for m in metrics.split(",") if m.strip()],
        inception_weights=args.inception_weights,
        allow_nonstandard_weights=args.allow_nonstandard_weights, segmenter=args.segmenter,
        segmenter_input=args.segmenter_input, batch_size=args.batch_size, device=args.device,
        seed=args.seed, cache_dir=args.cache_dir, use_cache=not args.no_cache,
        kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
        is_splits=args.is_splits, grid=args.grid, progress=not args.quiet)
    folder_mode = bool(args.real or args.fake)
    if folder_mode:
        if args.run or args.data:
            raise ConfigError("give either RUN_DIR --data DIR, or --real DIR --fake DIR, not "
                              "both")
        if not (args.real and args.fake and args.out):
            raise ConfigError("folder mode needs --real DIR, --fake DIR and --out DIR")
        results = evaluate_folders(args.real, args.fake, args.out, options, args.labels,
                                   args.num_classes)
        out = Path(args.out)
    else:
        if not (args.run and args.data):
            raise ConfigError("nothing to evaluate: pass RUN_DIR --data DIR (a run and its "
                              "dataset), or --real DIR --fake DIR --out DIR (two folders)")
        results = evaluate_run(args.run, args.data, options, args.out, args.phase,
                               args.max_images, args.msssim_samples, args.msssim_labels)
        out = Path(args.out) if args.out else Path(args.run) / "eval"
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    for warning in results["warnings"]:
        print(f"note: {warning}")
    width = max((len(r[0]) for r in metric_rows(results)), default=10)
    for name, value, _ in metric_rows(results):
        print(f"{name:<{width}}  {value}")
    print(f"wrote {out / 'eval.json'} and {out / 'eval.html'}")
    return 0


# ----------------------------------------------------------------------------- segmenter


def _add_segmenter(sub: argparse._SubParsersAction) -> None:
    seg = sub.add_parser("segmenter", help="train condsynth's own segmenter (for mIoU)",
                         description="A small U-Net segmenter trained on a dataset's real "
                         "images, for the mIoU / pixel accuracy of `condsynth evaluate` on "
                         "datasets without a public segmenter.")
    seg_sub = seg.add_subparsers(dest="segmenter_command", metavar="COMMAND")
    p = seg_sub.add_parser("train", help="train a segmenter on --data's training split",
                           description="Train on the training split (resized and cropped to "
                           "--size, flipped), score on the test/val split, write "
                           "segmenter.safetensors and segmenter.json into --out.")
    p.add_argument("--data", required=True, help="dataset folder (with label maps)")
    p.add_argument("--out", required=True, help="segmenter folder to write")
    p.add_argument("--layout", default="auto", help="dataset layout (default: detect)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    p.add_argument("--size", type=int, default=128, help="training crop size (default 128)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--channels", type=int, default=32, help="first-level channels (default 32)")
    p.add_argument("--depth", type=int, default=3, help="down-sampling steps (default 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    _device_and_quiet(p)
    p.set_defaults(func=cmd_segmenter_train)


def cmd_segmenter_train(args: argparse.Namespace) -> int:
    from condsynth.metrics.segmentation import train_segmenter

    if args.steps < 1:
        raise ConfigError(f"--steps must be at least 1, found {args.steps}")
    info = train_segmenter(args.data, args.out, steps=args.steps, size=args.size,
                           batch_size=args.batch_size, lr=args.lr,
                           base_channels=args.channels, depth=args.depth, layout=args.layout,
                           device=args.device, seed=args.seed, progress=not args.quiet)
    scores = info.get("eval")
    summary = (f"; on {scores['phase']} ({scores['images']} images): mIoU "
               f"{100 * scores['miou']:.1f}%, pixel accuracy "
               f"{100 * scores['pixel_accuracy']:.1f}%" if scores else "")
    print(f"trained a {info['num_classes']}-class segmenter in {info['seconds']} s{summary}; "
          f"use it with `condsynth evaluate ... --segmenter {args.out}`")
    return 0


# ----------------------------------------------------------------------------- study


def _add_study(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="human preference study (best / worst choice)",
                           description="Auto-painter's preference study: judges pick the best "
                           "and the worst of several systems' outputs for each input; the "
                           "report gives each system's like and dislike rates.")
    study_sub = study.add_subparsers(dest="study_command", metavar="COMMAND")
    p = study_sub.add_parser("build", help="build a study folder from systems' outputs",
                             description="Each --system is NAME=DIR: a folder of output "
                             "images named after their inputs, or a run directory (then "
                             "--data's test split is synthesized).")
    p.add_argument("--out", required=True, help="study folder to write")
    p.add_argument("--system", action="append", required=True, metavar="NAME=DIR",
                   help="a system: NAME=image folder or NAME=run directory (repeat)")
    p.add_argument("--inputs", help="folder of input pictures shown to judges, by file name "
                   "(default with runs: their coloured label maps)")
    p.add_argument("--data", help="dataset folder, for systems given as run directories")
    p.add_argument("--phase", help="split to synthesize (default: test, else val)")
    p.add_argument("--count", type=int, help="a random sample of this many inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and the synthesis")
    p.add_argument("--title", default="Which picture is best?", help="page title")
    p.add_argument("--overwrite", action="store_true", help="replace a study in --out "
                   "(discards its answers)")
    _device_and_quiet(p)
    p.set_defaults(func=cmd_study_build)

    p = study_sub.add_parser("serve", help="serve a study on 127.0.0.1 and save answers",
                             description="Serve the study page on 127.0.0.1; every answer is "
                             "written to results.json at once. Ctrl-C stops.")
    p.add_argument("dir", help="study folder")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=cmd_study_serve)

    p = study_sub.add_parser("report", help="like and dislike rates per system",
                             description="Each system's like rate (share of answers naming it "
                             "best) and dislike rate (worst): the popularity index.")
    p.add_argument("dir", help="study folder")
    p.add_argument("--answers", action="append", default=[], metavar="FILE",
                   help="answers downloaded from the page opened from disk (repeat)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_study_report)


def cmd_study_build(args: argparse.Namespace) -> int:
    from condsynth.study import build_study

    systems: dict[str, str] = {}
    for spec in args.system:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise ConfigError(f"--system {spec!r}: expected NAME=DIR")
        if name in systems:
            raise ConfigError(f"--system {name} is given twice")
        systems[name] = folder
    out = Path(args.out)
    inputs = args.inputs
    for name, folder in list(systems.items()):
        if (Path(folder) / "config.yaml").is_file():     # a run directory: synthesize
            if not args.data:
                raise ConfigError(f"--system {name}={folder} is a run directory: pass --data "
                                  "DIR to synthesize its test split")
            made = _synthesize_for_study(folder, args, out.parent / f".{out.name}-sources" / name)
            systems[name] = str(made / "fake")
            inputs = inputs or str(made / "labels")
    if inputs is not None and not Path(inputs).is_dir():
        raise CondsynthError(f"--inputs {inputs} is not a folder")
    manifest = build_study(out, systems, inputs, args.count, args.seed, args.title,
                           overwrite=args.overwrite)
    print(f"built a study of {len(manifest['items'])} items x {len(systems)} systems in {out}; "
          f"serve it with `condsynth study serve {out}`")
    return 0


def _synthesize_for_study(run: str, args: argparse.Namespace, out: Path) -> Path:
    from condsynth.api import load
    from condsynth.metrics.evaluate import synthesize_split

    method = load(run, device=args.device)
    synthesize_split(method, run, args.data, out, args.phase, args.seed,
                     progress=not args.quiet)
    return out


def cmd_study_serve(args: argparse.Namespace) -> int:
    from condsynth.study import serve_study

    try:
        serve_study(args.dir, args.port, quiet=not args.verbose)
    except OSError as err:
        raise CondsynthError(f"cannot serve on 127.0.0.1:{args.port} ({err}). Fix: choose "
                             "another --port.") from None
    except KeyboardInterrupt:
        print("stopped; answers are in", Path(args.dir) / "results.json")
    return 0


def cmd_study_report(args: argparse.Namespace) -> int:
    from condsynth.study.report import REPORT, format_report, study_report

    report = study_report(args.dir, args.answers)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if not args.json:
        print(f"wrote {Path(args.dir) / REPORT}")
    return 0
