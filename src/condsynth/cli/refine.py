"""``condsynth refine``: make synthetic images look real with a trained refiner (SimGAN),
keeping their names and labels."""

from __future__ import annotations

import argparse
import json

from condsynth.cli.common import add_device_flag, add_quiet_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth refine``."""
    p = subparsers.add_parser(
        "refine", help="refine a folder of synthetic images with a trained SimGAN run",
        description="Run a trained refiner (condsynth train --method simgan) on every image "
        "under --images (recursively) and write the refined images under the same names in "
        "--out (PNG), with the label files (dataset.json, attributes.csv, classes.json) copied "
        "beside them: the output is a labelled dataset of the same layout.")
    p.add_argument("run", metavar="RUN_DIR", help="the trained run")
    p.add_argument("--images", required=True, help="folder of synthetic images (and labels)")
    p.add_argument("--out", required=True, help="folder to write the refined images to")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward (default 64)")
    add_device_flag(p, default="auto", help="where the model runs (default: CUDA when available)")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_refine)


def cmd_refine(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.errors import ConfigError
    from condsynth.refine import refine_folder

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: expected at least 1")
    summary = refine_folder(load(args.run, device=args.device), args.images, args.out,
                            batch_size=args.batch_size, progress=not args.quiet)
    print(json.dumps(summary))
    return 0
