"""``condsynth study build|serve|report``: Auto-painter's human preference study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from condsynth.cli.common import add_device_flag, add_quiet_flag
from condsynth.errors import CondsynthError, ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth study``."""
    study = subparsers.add_parser(
        "study", help="human preference study (best / worst choice)",
        description="Auto-painter's preference study: judges pick the best and the worst of "
        "several systems' outputs for each input; the report gives each system's like and "
        "dislike rates.")
    study_sub = study.add_subparsers(dest="study_command", metavar="COMMAND")
    p = study_sub.add_parser("build", help="build a study folder from systems' outputs",
                             description="Each --system is NAME=DIR: a folder of output "
                             "images named after their inputs, or a run directory (then "
                             "--data's test split is synthesized).")
    p.add_argument("--out", required=True, help="study folder to write")
    p.add_argument("--system", action="append", required=True, metavar="NAME=DIR",
                   help="a system: NAME=image folder or NAME=run directory (repeat)")
    p.add_argument("--inputs", help="folder of input pictures shown to judges, by file name "
                   "(default with runs: their coloured label maps)")
    p.add_argument("--data", help="dataset folder, for systems given as run directories")
    p.add_argument("--phase", help="split to synthesize (default: test, else val)")
    p.add_argument("--count", type=int, help="a random sample of this many inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and the synthesis")
    p.add_argument("--title", default="Which picture is best?", help="page title")
    p.add_argument("--overwrite", action="store_true", help="replace a study in --out "
                   "(discards its answers)")
    add_device_flag(p, default="auto")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_study_build)

    p = study_sub.add_parser(
        "turing", help="build SimGAN's visual Turing test: real or refined?",
        description="Pair refined images (condsynth refine output) with real ones at random; "
        "judges mark the one they think real as best. `condsynth study report` then gives the "
        "real system's like rate: the share of correct answers (50%% = indistinguishable).")
    p.add_argument("--out", required=True, help="study folder to write")
    p.add_argument("--refined", required=True, help="folder of refined images (recursive)")
    p.add_argument("--real", required=True, help="folder of real images (recursive)")
    p.add_argument("--count", type=int, default=100, help="pairs to show (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairing")
    p.add_argument("--title", default="Real or refined?", help="page title")
    p.add_argument("--overwrite", action="store_true", help="replace a study in --out "
                   "(discards its answers)")
    p.set_defaults(func=cmd_study_turing)

    p = study_sub.add_parser("serve", help="serve a study on 127.0.0.1 and save answers",
                             description="Serve the study page on 127.0.0.1; every answer is "
                             "written to results.json at once. Ctrl-C stops.")
    p.add_argument("dir", help="study folder")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=cmd_study_serve)

    p = study_sub.add_parser("report", help="like and dislike rates per system",
                             description="Each system's like rate (share of answers naming it "
                             "best) and dislike rate (worst): the popularity index.")
    p.add_argument("dir", help="study folder")
    p.add_argument("--answers", action="append", default=[], metavar="FILE",
                   help="answers downloaded from the page opened from disk (repeat)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_study_report)


def cmd_study_build(args: argparse.Namespace) -> int:
    from condsynth.study import build_study

    systems: dict[str, str] = {}
    for spec in args.system:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise ConfigError(f"--system {spec!r}: expected NAME=DIR")
        if name in systems:
            raise ConfigError(f"--system {name} is given twice")
        systems[name] = folder
    out = Path(args.out)
    inputs = args.inputs
    for name, folder in list(systems.items()):
        if (Path(folder) / "config.yaml").is_file():     # a run directory: synthesize
            if not args.data:
                raise ConfigError(f"--system {name}={folder} is a run directory: pass --data "
                                  "DIR to synthesize its test split")
            made = _synthesize_for_study(folder, args, out.parent / f".{out.name}-sources" / name)
            systems[name] = str(made / "fake")
            inputs = inputs or str(made / "labels")
    if inputs is not None and not Path(inputs).is_dir():
        raise CondsynthError(f"--inputs {inputs} is not a folder")
    manifest = build_study(out, systems, inputs, args.count, args.seed, args.title,
                           overwrite=args.overwrite)
    print(f"built a study of {len(manifest['items'])} items x {len(systems)} systems in {out}; "
          f"serve it with `condsynth study serve {out}`")
    return 0


def cmd_study_turing(args: argparse.Namespace) -> int:
    from condsynth.study import build_turing_study

    if args.count < 1:
        raise ConfigError(f"--count {args.count}: expected at least 1 pair")
    manifest = build_turing_study(args.out, args.refined, args.real, args.count, args.seed,
                                  args.title, overwrite=args.overwrite)
    print(f"built a real-or-refined study of {len(manifest['items'])} pairs in {args.out}; "
          f"serve it with `condsynth study serve {args.out}`, then `condsynth study report "
          f"{args.out}`: the real system's like rate is the share of correct answers")
    return 0


def _synthesize_for_study(run: str, args: argparse.Namespace, out: Path) -> Path:
    from condsynth.api import load
    from condsynth.metrics.evaluate import synthesize_split

    method = load(run, device=args.device)
    synthesize_split(method, run, args.data, out, args.phase, args.seed,
                     progress=not args.quiet)
    return out


def cmd_study_serve(args: argparse.Namespace) -> int:
    from condsynth.study import serve_study

    try:
        serve_study(args.dir, args.port, quiet=not args.verbose)
    except OSError as err:
        raise CondsynthError(f"cannot serve on 127.0.0.1:{args.port} ({err}). Fix: choose "
                             "another --port.") from None
    except KeyboardInterrupt:
        print("stopped; answers are in", Path(args.dir) / "results.json")
    return 0


def cmd_study_report(args: argparse.Namespace) -> int:
    from condsynth.study.report import REPORT, format_report, study_report

    report = study_report(args.dir, args.answers)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if not args.json:
        print(f"wrote {Path(args.dir) / REPORT}")
    return 0
