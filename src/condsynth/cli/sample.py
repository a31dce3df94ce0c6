"""``condsynth sample``: images drawn from a noise-driven model (GAN toolbox)."""

from __future__ import annotations

import argparse

from condsynth.cli.common import add_device_flag, add_quiet_flag
from condsynth.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth sample``."""
    p = subparsers.add_parser(
        "sample", help="draw images from a noise-driven model (PNG files, grid, index.html)",
        description="Draw N images from a model that generates from noise (DCGAN, ProGAN, ...): "
        "of one class with --class K, else cycling through the classes of a class-conditional "
        "model. Writes sample_NNNN.png, grid.png and index.html into --out. A pipeline run "
        "writes every stage's output side by side; one whose chain takes attributes draws "
        "them (rows of its training table, else random +-1) and lists them on the page.")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--count", type=int, default=64, help="how many images (default 64)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--class", dest="cls", type=int, default=None, metavar="K",
                   help="class id for class-conditional models")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward (default 64)")
    p.add_argument("--levels", action="store_true",
                   help="also write levels.html: each sample's cascade level by level (the "
                   "coarse image, each band added), for Laplacian-pyramid models (lapgan)")
    add_device_flag(p, default="auto", help="where the model runs (default: CUDA when available)")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.pipeline import is_pipeline_run, sample_pipeline
    from condsynth.sampling import check_cascade, sample, sample_levels

    if is_pipeline_run(args.run):             # every stage's output side by side
        if args.cls is not None:
            raise ConfigError("--class does not apply to a pipeline run")
        if args.levels:
            raise ConfigError("--levels does not apply to a pipeline run (its page shows "
                              "every stage already). Fix: leave out --levels.")
        page = sample_pipeline(args.run, args.count, args.out, args.seed, device=args.device,
                               batch_size=args.batch_size, draw_attributes=True)
        print(f"wrote {args.count} samples: {page}")
        return 0
    method = load(args.run, device=args.device)
    if args.levels:
        check_cascade(method)                    # before any file is written
    page = sample(method, args.count, args.out, args.cls, args.seed, args.batch_size,
                  progress=not args.quiet)
    print(f"wrote {args.count} samples: {page}")
    if args.levels:
        levels = sample_levels(method, args.count, args.out, args.cls, args.seed,
                               args.batch_size)
        print(f"wrote their cascade levels: {levels}")
    return 0
