"""``condsynth bench``: training and inference speed and memory of a method or a run."""

from __future__ import annotations

import argparse
import json

from condsynth.cli.common import add_config_flag, add_device_flag, add_overrides
from condsynth.config import PRECISIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth bench``."""
    p = subparsers.add_parser("bench", help="measure training and inference speed and memory")
    p.add_argument("--method", default="pix2pix", help="registered method")
    add_config_flag(p, "YAML config or preset (default: the method's defaults)")
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
    add_device_flag(p)
    add_overrides(p)
    p.set_defaults(func=cmd_bench)


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
