"""``condsynth classifier train|test``: a domain classifier, the feature network of FID, KID and
the Inception Score on data that ImageNet's Inception does not fit."""

from __future__ import annotations

import argparse

from condsynth.cli.common import add_device_flag, add_quiet_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth classifier``."""
    top = subparsers.add_parser(
        "classifier", help="train or test a domain classifier (for IS / FID / KID)",
        description="A small CNN trained on a dataset's labelled real images, for `condsynth "
        "evaluate --classifier FILE`: FID, KID and the Inception Score computed with it "
        "instead of ImageNet's Inception network.")
    sub = top.add_subparsers(dest="classifier_command", metavar="COMMAND")
    p = sub.add_parser("train", help="train a classifier on --data's training split",
                       description="Train on the labelled images of the training split "
                       "(class folders, dataset.json or MNIST-family IDX files), score it on "
                       "the test split (else val, else 10%% of train held out), and write "
                       "FILE.safetensors with FILE.json beside it.")
    p.add_argument("--data", required=True, help="dataset folder with class labels")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="weights file to write, ending in .safetensors")
    p.add_argument("--size", type=int, help="input size (default: the data's, at most 64)")
    p.add_argument("--channels", type=int, choices=[1, 3],
                   help="input channels (default: 1 for IDX files, else 3)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=3.0,
                        help="passes over the training images (default 3)")
    length.add_argument("--steps", type=int, help="optimizer steps (instead of --epochs)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--lr", type=float, default=2e-3,
                   help="Adam's peak learning rate, decayed by a cosine (default 2e-3)")
    p.add_argument("--width", type=int, default=16,
                   help="channels of the first convolution (default 16)")
    p.add_argument("--layout", default="auto", help="dataset layout (default: detect)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    add_device_flag(p, default="auto")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_classifier_train)

    t = sub.add_parser("test", help="print a classifier's accuracy on a dataset split")
    t.add_argument("file", metavar="RUN_OR_FILE",
                   help="classifier file, or a run whose method has a classifier")
    t.add_argument("--data", required=True, help="dataset folder with class labels")
    t.add_argument("--phase", help="split (default: test, else val, else train)")
    t.add_argument("--layout", default="auto", help="dataset layout (default: detect)")
    add_device_flag(t, default="auto")
    add_quiet_flag(t)
    t.set_defaults(func=cmd_classifier_test)
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])


def cmd_classifier_train(args: argparse.Namespace) -> int:
    from condsynth.metrics.classifier import load_classifier, train_classifier

    path = train_classifier(args.data, args.out, size=args.size, channels=args.channels,
                            steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
                            lr=args.lr, width=args.width, layout=args.layout, seed=args.seed,
                            device=args.device, progress=not args.quiet)
    info = load_classifier(path).info
    accuracy = info["accuracy"]
    print(f"trained a {len(info['classes'])}-class classifier at {info['size']}x{info['size']}"
          f"x{info['channels']} in {info['seconds']} s: train accuracy "
          f"{100 * accuracy['train']:.2f}%, test accuracy {100 * accuracy['test']:.2f}% "
          f"({accuracy['test_images']} images, {accuracy['test_split']}). Wrote {path} and "
          f"{path.with_suffix('.json')}; use it with `condsynth evaluate ... --classifier "
          f"{path}`")
    return 0


def cmd_classifier_test(args: argparse.Namespace) -> int:
    from condsynth.metrics.classifier import classifier_accuracy, load_feature_classifier
    from condsynth.runtime import resolve_device

    classifier = load_feature_classifier(args.file, resolve_device(args.device))
    result = classifier_accuracy(classifier, args.data, args.phase, args.layout,
                                 progress=not args.quiet)
    print(f"accuracy {100 * result['accuracy']:.2f}% on {result['images']} images of the "
          f"{result['phase']} split ({classifier.name})")
    return 0
