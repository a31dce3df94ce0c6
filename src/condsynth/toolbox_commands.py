"""``condsynth sample``, ``condsynth explore`` and ``condsynth probe``: the GAN toolbox's
commands for noise-driven models. Heavy imports stay inside the handlers."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the toolbox commands to the CLI."""
    p = subparsers.add_parser(
        "sample", help="draw images from a noise-driven model (PNG files, grid, index.html)",
        description="Draw N images from a model that generates from noise (DCGAN, ProGAN, ...): "
        "of one class with --class K, else cycling through the classes of a class-conditional "
        "model. Writes sample_NNNN.png, grid.png and index.html into --out.")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--count", type=int, default=64, help="how many images (default 64)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--class", dest="cls", type=int, default=None, metavar="K",
                   help="class id for class-conditional models")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward (default 64)")
    _common(p)
    p.set_defaults(func=cmd_sample)

    p = subparsers.add_parser(
        "explore", help="latent walks and vector arithmetic of a noise-driven model, as a page",
        description="Show a model's latent space as the DCGAN paper does: interpolations "
        "between random codes, and vector arithmetic on the mean codes of chosen samples: "
        "--arithmetic '3,7-1,5+2' is mean(z3, z7) - mean(z1, z5) + z2, where the numbers are "
        "the samples drawn on the page (samples.png, numbered row by row from 0).")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--walks", type=int, default=4, help="interpolations (default 4)")
    p.add_argument("--steps", type=int, default=8, help="codes per interpolation (default 8)")
    p.add_argument("--samples", type=int, default=24,
                   help="numbered samples the arithmetic refers to (default 24)")
    p.add_argument("--arithmetic", default=None, metavar="EXPR",
                   help="sample groups joined by + and -, e.g. '3,7-1,5+2'")
    p.add_argument("--class", dest="cls", type=int, default=None, metavar="K",
                   help="class of a class-conditional model (default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _common(p)
    p.set_defaults(func=cmd_explore)

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
    _common(p)
    p.set_defaults(func=cmd_probe)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the model runs (default: CUDA when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_sample(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.sampling import sample

    page = sample(load(args.run, device=args.device), args.count, args.out, args.cls,
                  args.seed, args.batch_size, progress=not args.quiet)
    print(f"wrote {args.count} samples: {page}")
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.sampling import explore

    page = explore(load(args.run, device=args.device), args.out, args.walks, args.steps,
                   args.arithmetic, args.samples, args.cls, args.seed)
    print(f"wrote the latent-space page: {page}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from condsynth.probe import format_probe, probe

    if args.labels_per_class < 1 or args.draws < 1:
        from condsynth.errors import ConfigError

        raise ConfigError("--labels-per-class and --draws must be at least 1")
    results = probe(args.run, args.data, args.labels_per_class, args.classifier, args.draws,
                    args.max_test, seed=args.seed, device=args.device, out=args.out)
    print(format_probe(results))
    return 0
