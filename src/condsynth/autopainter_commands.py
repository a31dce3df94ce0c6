"""Command-line pieces of Auto-painter: ``condsynth data sketches`` (images → sketch/colour
pairs) and the sketch side of ``condsynth synthesize`` (``--sketch``, ``--sketches``,
``--hints``, ``--hints-dir``). Heavy imports stay inside the handlers so ``--help`` is quick."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from condsynth.errors import ConfigError

if TYPE_CHECKING:
    from condsynth.methods.base import Method

# XDoG flags with the defaults their help states (a test checks these against XDoGParams;
# importing it here would load torch for every `condsynth --help`).
XDOG_FLAGS = {
    "sigma": (0.8, "narrow Gaussian scale in pixels: line width"),
    "k": (1.6, "ratio of the wide Gaussian's scale"),
    "tau": (0.98, "weight of the wide Gaussian; nearer 1 = more lines"),
    "epsilon": (-0.01, "threshold where ink starts"),
    "phi": (200.0, "steepness of the soft threshold"),
}


def add_data_sketches(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth data sketches`` to the ``data`` command's subparsers."""
    p = data_subparsers.add_parser(
        "sketches", help="turn a folder of images into sketch/colour pairs (XDoG lines)",
        description="Extract XDoG line drawings (Winnemöller et al. 2012) from every image under "
        "IMAGES_DIR (searched recursively) and write OUT/train_sketch/ + OUT/train_img/ (and "
        "test_* with --test-count): the sketch_pairs layout that `condsynth train --method "
        "autopainter --data OUT` reads. Parameters act on grey levels in [0, 1].")
    p.add_argument("images", metavar="IMAGES_DIR", help="folder of colour images")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--size", type=int, default=None,
                   help="resize each image so that its shorter side is this many pixels first "
                   "(default: keep the size)")
    p.add_argument("--test-count", type=int, default=0,
                   help="the last N images (by name) go to test_sketch/ + test_img/")
    for name, (default, text) in XDOG_FLAGS.items():
        p.add_argument(f"--{name}", type=float, default=None, help=f"{text} (default {default:g})")
    p.add_argument("--binarize", action="store_true", help="pure black and white lines")
    p.add_argument("--random", action="store_true",
                   help="draw the XDoG parameters per image (varied line styles) instead")
    p.add_argument("--seed", type=int, default=0, help="seed of --random (same seed, same files)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_data_sketches)


def cmd_data_sketches(args: argparse.Namespace) -> int:
    from condsynth.data.sketches import XDoGParams, write_sketch_pairs

    given = {name: getattr(args, name) for name in XDOG_FLAGS if getattr(args, name) is not None}
    params = XDoGParams(binarize=args.binarize, **given)
    if params.sigma <= 0 or params.k <= 0:
        raise ConfigError(f"--sigma {params.sigma} and --k {params.k} must be positive")
    summary = write_sketch_pairs(args.images, args.out, params, random_params=args.random,
                                 size=args.size, test_count=args.test_count, seed=args.seed,
                                 progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def add_synthesize_arguments(p: argparse.ArgumentParser) -> None:
    """The sketch flags of ``condsynth synthesize``."""
    p.add_argument("--sketch", help="one sketch: dark lines on white paper, any size (light "
                   "lines on dark are inverted, transparent paper is white)")
    p.add_argument("--hints", help="colour hints for --sketch: strokes on white (or transparent) "
                   "paper, of the sketch's size or aspect ratio")
    p.add_argument("--sketches", help="a folder of sketches (folder mode: index.html of sketch "
                   "| hints | result)")
    p.add_argument("--hints-dir", help="hint images for --sketches, paired by file name; "
                   "sketches without one are coloured without hints")


def synthesize_sketches(method: Method, args: argparse.Namespace) -> int:
    """``condsynth synthesize`` with ``--sketch`` or ``--sketches``."""
    from condsynth.synthesize import synthesize_sketch_file, synthesize_sketch_folder

    if args.sketch and args.sketches:
        raise ConfigError("pass either --sketch S.png or --sketches DIR, not both")
    if args.sketches:
        if args.hints:
            raise ConfigError("--hints goes with --sketch; in folder mode use --hints-dir DIR")
        out, notes = synthesize_sketch_folder(method, args.sketches, args.out, args.hints_dir,
                                              args.seed, progress=not args.quiet)
        message = f"wrote {out / 'index.html'}"
    else:
        if args.hints_dir:
            raise ConfigError("--hints-dir goes with --sketches; for one sketch use --hints H.png")
        out, notes = synthesize_sketch_file(method, args.sketch, args.out, args.hints, args.seed)
        message = f"wrote {out}"
    for note in notes:
        print(f"condsynth: note: {note}", file=sys.stderr)
    print(message)
    return 0
