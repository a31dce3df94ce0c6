"""``condsynth import``: an official pix2pixHD or SPADE checkpoint folder as a run directory.
(The module has a trailing underscore because ``import`` is a Python keyword.)"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth import``."""
    p = subparsers.add_parser("import", help="turn an official pix2pixHD or SPADE checkpoint "
                              "folder into a condsynth run directory")
    p.add_argument("kind", choices=["pix2pixhd", "spade"], help="which official code made it")
    p.add_argument("official_dir", help="the experiment folder (opt.txt + latest_net_G.pth)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--epoch", default="latest", help="which <epoch>_net_G.pth to read")
    p.add_argument("--vgg-weights", help="VGG19 file recorded for training (the VGG loss)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    if args.kind == "pix2pixhd":
        from condsynth.compat.pix2pixhd import import_pix2pixhd

        out = import_pix2pixhd(args.official_dir, args.out, vgg_weights=args.vgg_weights,
                               which_epoch=args.epoch, overwrite=args.overwrite)
    else:
        from condsynth.compat.spade import import_spade

        out = import_spade(args.official_dir, args.out, epoch=args.epoch,
                           overwrite=args.overwrite, vgg_weights=args.vgg_weights)
    print(f"imported the official {args.kind} checkpoint into {out}")
    return 0
