"""``condsynth demo``: procedural scenes, a small model trained on them, a page of results."""

from __future__ import annotations

import argparse
from pathlib import Path

from condsynth.cli.common import add_device_flag, add_overrides, add_quiet_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth demo``."""
    p = subparsers.add_parser("demo", help="make procedural scenes, train a small model on "
                              "them (about five minutes on a CPU) and write a page of results")
    p.add_argument("--out", default="condsynth-demo", help="folder for the data and the run")
    p.add_argument("--method", default=None, help="method to train (default: the demo preset)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: preset)")
    p.add_argument("--size", type=int, default=None, help="scene size (default: preset)")
    p.add_argument("--count", type=int, default=None, help="training scenes (default: preset)")
    add_device_flag(p)
    add_quiet_flag(p)
    add_overrides(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from condsynth.demo import run_demo

    page = run_demo(Path(args.out), method=args.method, steps=args.steps, size=args.size,
                    count=args.count, device=args.device, progress=not args.quiet,
                    overrides=args.overrides)
    print(f"demo finished: open {page}")
    return 0
