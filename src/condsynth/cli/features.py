"""``condsynth features``: pix2pixHD's per-class K-means looks of a trained run."""

from __future__ import annotations

import argparse

from condsynth.cli.common import add_device_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth features``."""
    p = subparsers.add_parser("features", help="pix2pixHD: encode the training set and cluster "
                              "each class's instance features (selectable looks at inference)")
    p.add_argument("run", help="a pix2pixhd run trained with model.instance_feat=true")
    p.add_argument("--data", required=True, help="its dataset folder")
    p.add_argument("--clusters", type=int, default=None, help="K-means clusters per class "
                   "(default: model.n_clusters, 10)")
    add_device_flag(p)
    p.set_defaults(func=cmd_features)


def cmd_features(args: argparse.Namespace) -> int:
    from condsynth.methods.pix2pixhd_looks import compute_features

    out = compute_features(args.run, args.data, n_clusters=args.clusters,
                           device=args.device or "auto")
    print(f"wrote the clustered instance features to {out}")
    return 0
