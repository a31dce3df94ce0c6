"""``condsynth synthesize``: pictures from label maps, or from sketches (Auto-painter), with a
trained run."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from condsynth.cli.common import add_device_flag, add_fast_path_flags, add_quiet_flag
from condsynth.errors import ConfigError

if TYPE_CHECKING:
    from condsynth.methods.base import Method


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth synthesize``."""
    p = subparsers.add_parser("synthesize", help="generate pictures from label maps (or "
                              "sketches) with a trained run")
    p.add_argument("run", help="run directory")
    p.add_argument("--label", help="one label map (single-channel PNG of class ids)")
    p.add_argument("--instance", help="its instance map (Cityscapes encoding)")
    p.add_argument("--labels", help="a folder of label maps (folder mode)")
    p.add_argument("--instances", help="a folder of instance maps, paired by file name")
    p.add_argument("--style-image", help="an image whose look the output takes (methods "
                   "with a style encoder)")
    p.add_argument("--palette", help="JSON mapping colours to class ids, for RGB label maps")
    p.add_argument("--seed", type=int, help="seed for methods with random looks")
    p.add_argument("--out", required=True, help="output PNG, or folder in folder mode")
    add_fast_path_flags(p)
    # Auto-painter's side: sketches and colour hints.
    p.add_argument("--sketch", help="one sketch: dark lines on white paper, any size (light "
                   "lines on dark are inverted, transparent paper is white)")
    p.add_argument("--hints", help="colour hints for --sketch: strokes on white (or transparent) "
                   "paper, of the sketch's size or aspect ratio")
    p.add_argument("--sketches", help="a folder of sketches (folder mode: index.html of sketch "
                   "| hints | result)")
    p.add_argument("--hints-dir", help="hint images for --sketches, paired by file name; "
                   "sketches without one are coloured without hints")
    add_device_flag(p)
    add_quiet_flag(p)
    p.set_defaults(func=cmd_synthesize)


def cmd_synthesize(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.synthesize import synthesize_file, synthesize_folder

    method = load(args.run, device=args.device or "auto", precision=args.precision,
                  channels_last=args.channels_last)
    if args.sketch or args.sketches:
        return synthesize_sketches(method, args)
    if args.labels:
        out = synthesize_folder(method, args.labels, args.out, args.instances, args.style_image,
                                args.palette, args.seed, progress=not args.quiet)
        print(f"wrote {out / 'index.html'}")
    elif args.label:
        out = synthesize_file(method, args.label, args.out, args.instance, args.style_image,
                              args.palette, args.seed)
        print(f"wrote {out}")
    else:
        raise ConfigError("nothing to synthesize: pass --label L.png or --labels DIR (or, for "
                          "a sketch model, --sketch S.png or --sketches DIR)")
    return 0


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
