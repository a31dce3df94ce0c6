"""``condsynth evaluate``: FID, KID, IS, SWD, mIoU and MS-SSIM of a run, or of two image
folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from condsynth.cli.common import add_device_flag, add_quiet_flag
from condsynth.errors import ConfigError

DEFAULT_METRICS = "fid,kid,is,swd"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth evaluate``."""
    p = subparsers.add_parser(
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
    p.add_argument("--metrics", help="comma-separated subset of fid,kid,is,swd,miou,msssim,"
                   f"accuracy (default: {DEFAULT_METRICS}, plus miou when --segmenter is given; "
                   "accuracy: the test accuracy of a classifying run, e.g. improved_gan)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/eval; required in folder "
                   "mode)")
    p.add_argument("--inception-weights", help="the FID Inception weights file (.pth)")
    p.add_argument("--allow-nonstandard-weights", action="store_true",
                   help="score with Inception weights other than the standard file; reports "
                   "then say the scores are not comparable with published ones")
    p.add_argument("--classifier", metavar="RUN_OR_FILE",
                   help="compute FID, KID and IS with this classifier instead of Inception: a "
                   "file from `condsynth classifier train`, or a run whose method has a "
                   "classifier; reports name it")
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
    add_device_flag(p, default="auto")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from condsynth.metrics.evaluate import EvalOptions, evaluate_folders, evaluate_run
    from condsynth.metrics.report import metric_rows

    metrics = args.metrics or DEFAULT_METRICS + (",miou" if args.segmenter else "")
    options = EvalOptions(
        metrics=[m.strip().lower() for m in metrics.split(",") if m.strip()],
        inception_weights=args.inception_weights,
        allow_nonstandard_weights=args.allow_nonstandard_weights, segmenter=args.segmenter,
        segmenter_input=args.segmenter_input, classifier=args.classifier,
        batch_size=args.batch_size, device=args.device,
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
    # A metric that failed is reported (and makes the exit code 2); the others stand.
    failed = [f"condsynth: error: {name}: {message}"
              for name, message in results["errors"].items()]
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for warning in results["warnings"]:
            print(f"note: {warning}")
        if results.get("feature_network"):
            print(f"FID / KID / IS network: {results['feature_network']['summary']}")
        rows = [r for r in metric_rows(results) if r[0] not in results["errors"]]
        width = max((len(r[0]) for r in rows), default=10)
        for name, value, _ in rows:
            print(f"{name:<{width}}  {value}")
        print(f"wrote {out / 'eval.json'} and {out / 'eval.html'}")
    print("\n".join(failed), file=sys.stderr, end="\n" if failed else "")
    return 2 if failed else 0
