"""``condsynth export RUN --format onnx --out MODEL.onnx``: a run's generator as a file that
ONNX Runtime (or any ONNX runtime) runs without PyTorch; see :mod:`condsynth.export`.

Heavy imports (torch, the exporter) stay inside the handler so that ``condsynth --help`` is
quick.
"""

from __future__ import annotations

import argparse

from condsynth.errors import ConfigError

FORMATS = ("onnx",)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth export``."""
    p = subparsers.add_parser(
        "export", help="write a run's generator as an ONNX model for deployment",
        description="Export the inference network of a run, with its input encoding (class "
        "ids to one-hot, dont-care, instance edges), to ONNX, plus a JSON sidecar with the "
        "classes, colours, inputs and outputs. Run it with `condsynth synthesize MODEL.onnx`, "
        "`condsynth studio MODEL.onnx`, or without PyTorch through condsynth.deploy.")
    p.add_argument("run", help="run directory")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format (onnx)")
    p.add_argument("--out", required=True, help="the .onnx file to write (MODEL.json is "
                   "written beside it)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", help="HxW the model takes (default: the run's training size)")
    size.add_argument("--dynamic", action="store_true", help="any batch, height and width "
                      "(multiples of the network's down-sampling)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), default="fp32",
                   help="arithmetic inside the graph (inputs and output stay float32): int8 "
                   "(static quantization, needs --calibration) is the fast CPU path; fp16/bf16 "
                   "are for runtimes with those kernels, such as GPUs")
    p.add_argument("--calibration", metavar="DIR", help="int8: a dataset folder whose label "
                   "maps (train split, else test) set the activation ranges")
    p.add_argument("--calibration-count", type=int, default=16, metavar="N",
                   help="int8: how many label maps to calibrate on (default 16)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from condsynth.export import export_onnx, parse_size

    if args.format != "onnx":
        raise ConfigError(f"--format {args.format}: only onnx is supported")
    size = parse_size(args.size) if args.size else None
    if args.calibration and args.precision != "int8":
        raise ConfigError("--calibration is for --precision int8")
    out = export_onnx(args.run, args.out, size=size, dynamic=args.dynamic,
                      precision=args.precision, calibration=args.calibration,
                      calibration_count=args.calibration_count)
    from condsynth.deploy import read_sidecar, sidecar_path

    sidecar = read_sidecar(out)
    inputs = ", ".join(f"{i['name']} {i['dtype']} {tuple(i['shape'])}" for i in sidecar["inputs"])
    print(f"wrote {out} and {sidecar_path(out)}: {sidecar['method']}, {args.precision}, "
          f"inputs {inputs}")
    return 0
