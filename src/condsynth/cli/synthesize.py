"""``condsynth synthesize``: pictures from label maps, or from sketches (Auto-painter), with a
trained run."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from condsynth.cli.common import add_device_flag, add_fast_path_flags, add_quiet_flag
from condsynth.errors import ConfigError

if TYPE_CHECKING:
    import torch

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
    # Pipeline runs: the chain, every stage's output side by side.
    p.add_argument("--given", action="append", default=[], metavar="STAGE=PNG",
                   help="pipeline runs: a picture that stands for a stage's output (edited "
                   "normals, a sketch); the chain goes on from it (repeatable)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="pipeline runs: an external input of the chain as numbers (repeatable)")
    p.add_argument("--count", type=int, help="pipeline runs: how many samples (default 1)")
    # Attribute-conditioned runs and pipelines (attributes → sketch → face).
    p.add_argument("--attributes", metavar="NAME=V,...",
                   help="attribute values, e.g. \"Smiling=1,Eyeglasses=1\"; attributes not "
                   "named take --absent (a note lists them)")
    p.add_argument("--absent", type=float, default=-1.0,
                   help="value of the attributes --attributes does not name (default -1)")
    add_device_flag(p)
    add_quiet_flag(p)
    p.set_defaults(func=cmd_synthesize)


def cmd_synthesize(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.pipeline import is_pipeline_run
    from condsynth.synthesize import synthesize_file, synthesize_folder

    if is_pipeline_run(args.run):
        return synthesize_pipeline(args)
    if args.given or args.input or args.count is not None:
        raise ConfigError("--given, --input and --count apply to pipeline runs; "
                          f"{args.run} is a single run")
    method = load(args.run, device=args.device or "auto", precision=args.precision,
                  channels_last=args.channels_last)
    if args.attributes is not None:
        return synthesize_attributes(method, args)
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


def attribute_values(names: list[str], args: argparse.Namespace) -> torch.Tensor:
    """``--attributes`` as a (1, A) vector in the order of ``names``; notes to stderr."""
    from condsynth.conditions import parse_attributes

    if not names:
        raise ConfigError(f"{args.run} is not conditioned on attributes; --attributes does not "
                          "apply. Fix: leave it out.")
    vector, notes = parse_attributes(args.attributes, names, args.absent)
    for note in notes:
        print(f"condsynth: note: {note}", file=sys.stderr)
    return vector


def synthesize_attributes(method: Method, args: argparse.Namespace) -> int:
    """A single attribute-conditioned run: ``--attributes`` alone (attributes → picture), or
    with ``--sketch`` (sketch + attributes → picture)."""
    import torch

    from condsynth.data.dataset import tensor_to_image
    from condsynth.pages import save_png
    from condsynth.synthesize import synthesize_sketch_file

    vector = attribute_values(method.config.condition.attributes, args)
    if args.sketch:
        out, notes = synthesize_sketch_file(method, args.sketch, args.out, args.hints,
                                            args.seed, attributes=vector)
        for note in notes:
            print(f"condsynth: note: {note}", file=sys.stderr)
    elif method.config.condition.kind == "vector":
        if args.seed is not None:
            torch.manual_seed(args.seed)
        save_png(tensor_to_image(method.generate(vector)[0]), args.out)
        out = args.out
    else:
        raise ConfigError(f"this {method.config.method} run draws from a sketch and "
                          "attributes. Fix: add --sketch S.png.")
    print(f"wrote {out}")
    return 0


def synthesize_pipeline(args: argparse.Namespace) -> int:
    """``condsynth synthesize`` of a pipeline run: the chain from ``--given`` pictures and
    ``--input`` vectors, every stage's output in ``--out``/index.html."""
    import torch

    from condsynth.pipeline import picture_input, read_pipeline, sample_pipeline

    pipeline = read_pipeline(args.run)
    given = {}
    for item in args.given:
        stage, _, path = item.partition("=")
        if not path:
            raise ConfigError(f"--given {item!r} is not STAGE=PNG")
        given[stage] = picture_input(pipeline, args.run, stage, path)
    inputs = {}
    for item in args.input:
        name, _, text = item.partition("=")
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ConfigError(f"--input {item!r} is not NAME=V1,V2,... (numbers)") from None
        inputs[name] = torch.tensor([values])
    if args.attributes is not None:
        if "attributes" in inputs:
            raise ConfigError("pass the attributes once: --attributes or --input attributes=...")
        inputs["attributes"] = attribute_values(chain_attribute_names(pipeline, args.run), args)
    count = args.count or 1
    given = {k: v.expand(count, -1, -1, -1) for k, v in given.items()}
    inputs = {k: v.expand(count, -1) for k, v in inputs.items()}
    page = sample_pipeline(args.run, count, args.out, args.seed or 0, inputs, given,
                           device=args.device or "auto")
    print(f"wrote {page}")
    return 0


def chain_attribute_names(pipeline: Any, run: str) -> list[str]:
    """The attribute names the pipeline's chain takes (:func:`condsynth.pipeline.
    attribute_names`); an error when it takes none."""
    from condsynth.pipeline import attribute_names

    names = attribute_names(pipeline, run)
    if names is None:
        raise ConfigError(f"the pipeline {pipeline.name} takes no attributes input. Fix: "
                          "leave --attributes out.")
    return names
