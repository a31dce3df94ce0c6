"""``condsynth explore``: latent walks and vector arithmetic of a noise-driven model, as a
page (GAN toolbox)."""

from __future__ import annotations

import argparse

from condsynth.cli.common import add_device_flag, add_quiet_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth explore``."""
    p = subparsers.add_parser(
        "explore", help="latent walks and vector arithmetic of a noise-driven model, as a page",
        description="Show a model's latent space as the DCGAN paper does: interpolations "
        "between random codes, and vector arithmetic on the mean codes of chosen samples: "
        "--arithmetic '3,7-1,5+2' is mean(z3, z7) - mean(z1, z5) + z2, where the numbers are "
        "the samples drawn on the page (samples.png, numbered row by row from 0).")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--walks", type=int, default=4, help="interpolations (default 4)")
    p.add_argument("--steps", type=int, default=8, help="codes per interpolation (default 8)")
    p.add_argument("--samples", type=int, default=24,
                   help="numbered samples the arithmetic refers to (default 24)")
    p.add_argument("--arithmetic", default=None, metavar="EXPR",
                   help="sample groups joined by + and -, e.g. '3,7-1,5+2'")
    p.add_argument("--class", dest="cls", type=int, default=None, metavar="K",
                   help="class of a class-conditional model (default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_device_flag(p, default="auto", help="where the model runs (default: CUDA when available)")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_explore)


def cmd_explore(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.sampling import explore

    page = explore(load(args.run, device=args.device), args.out, args.walks, args.steps,
                   args.arithmetic, args.samples, args.cls, args.seed)
    print(f"wrote the latent-space page: {page}")
    return 0
