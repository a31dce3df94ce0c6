"""``condsynth probe``: DCGAN's representation test of a discriminator (GAN toolbox)."""

from __future__ import annotations

import argparse

from condsynth.cli.common import add_device_flag, add_quiet_flag
from condsynth.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth probe``."""
    p = subparsers.add_parser(
        "probe", help="score a GAN's discriminator as a feature extractor (DCGAN's test)",
        description="The DCGAN paper's representation test: each discriminator convolution "
        "max-pooled to 4x4 and concatenated; a linear classifier trained on N labels per class "
        "of the training split, scored on the test split; beside it the same on raw pixels and "
        "on an untrained discriminator of the same shape. Needs class labels (class folders, "
        "IDX files or a dataset.json).")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--data", required=True, help="dataset with a train and a test split")
    p.add_argument("--labels-per-class", type=int, default=100,
                   help="labelled training images per class (default 100)")
    p.add_argument("--classifier", choices=["logistic", "svm"], default="logistic",
                   help="logistic regression or an L2-SVM (default logistic)")
    p.add_argument("--draws", type=int, default=1,
                   help="label draws to average over (default 1)")
    p.add_argument("--max-test", type=int, default=None, help="use at most N test images")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="folder for probe.json")
    add_device_flag(p, default="auto", help="where the model runs (default: CUDA when available)")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from condsynth.probe import format_probe, probe

    if args.labels_per_class < 1 or args.draws < 1:
        raise ConfigError("--labels-per-class and --draws must be at least 1")
    results = probe(args.run, args.data, args.labels_per_class, args.classifier, args.draws,
                    args.max_test, seed=args.seed, device=args.device, out=args.out)
    print(format_probe(results))
    return 0
