"""The ``condsynth`` command line: one module per subcommand, each with ``register(subparsers)``.

Adding a command is adding a module here that defines
``register(subparsers: argparse._SubParsersAction) -> None`` (it adds its parser and sets
``func`` to its handler) and naming it in :data:`COMMANDS`. Modules import nothing heavy at the
top (torch, the server, the metrics), so that ``condsynth --help`` is quick: handlers import
what they run.

Every user-facing problem (a bad label map, an unknown config key, a missing weights file)
ends as one clear message and exit code 2, never a traceback: :func:`main` is the one place
that turns a :class:`~condsynth.errors.CondsynthError` into that.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from condsynth.errors import CondsynthError

# The subcommand modules of this package, in the order ``condsynth --help`` lists them.
COMMANDS: tuple[str, ...] = ("train", "synthesize", "data", "demo", "bench", "import_",
                             "features", "export", "evaluate", "segmenter", "classifier", "study",
                             "studio",
                             "sample", "explore", "probe", "refine", "classify")


def build_parser() -> argparse.ArgumentParser:
    """The ``condsynth`` parser with every subcommand of :data:`COMMANDS` registered."""
    parser = argparse.ArgumentParser(
        prog="condsynth", description="Conditional image synthesis: label maps, instance maps "
        "and sketches in, pictures out (pix2pix, pix2pixHD, SPADE, Auto-painter); GANs "
        "that generate from noise, a class or attributes (DCGAN).")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``condsynth`` with ``argv`` (default: the process's arguments); the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from condsynth import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return args.func(args)
    except CondsynthError as err:
        print(f"condsynth: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:                    # the disk, not condsynth: full, read-only, gone
        where = f" ({err.filename})" if err.filename else ""
        print(f"condsynth: error: {err.strerror or err}{where}. Fix: check that the path "
              "exists, is writable and that the disk has space.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("condsynth: interrupted", file=sys.stderr)
        return 130
