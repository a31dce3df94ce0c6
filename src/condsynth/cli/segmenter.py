"""``condsynth segmenter train``: condsynth's own segmenter, for the mIoU of ``evaluate``."""

from __future__ import annotations

import argparse

from condsynth.cli.common import add_device_flag, add_quiet_flag
from condsynth.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth segmenter``."""
    seg = subparsers.add_parser(
        "segmenter", help="train condsynth's own segmenter (for mIoU)",
        description="A small U-Net segmenter trained on a dataset's real images, for the mIoU / "
        "pixel accuracy of `condsynth evaluate` on datasets without a public segmenter.")
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
    add_device_flag(p, default="auto")
    add_quiet_flag(p)
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
