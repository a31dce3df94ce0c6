"""``condsynth classify``: the class of images, by a run that classifies (the semi-supervised
K+1 GAN's discriminator; its parameter average when the run keeps one)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from condsynth.cli.common import add_device_flag
from condsynth.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from condsynth.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth classify``."""
    p = subparsers.add_parser(
        "classify", help="predict the class of images with a classifying run (improved_gan)",
        description="Predict the class of each image with the discriminator of a semi-"
        "supervised GAN run (improved_gan; its averaged parameters when the run keeps them). "
        "Images are converted to the run's channels and resized to its training size, as in "
        "training. Prints the predicted class and its probability, or with --json every "
        "class probability.")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--json", action="store_true", help="print a JSON list: file, class, name, "
                   "probability and the probabilities of every class")
    add_device_flag(p, default="auto")
    p.set_defaults(func=cmd_classify)


def read_images(paths: list[str], config: Config) -> torch.Tensor:
    """The images as the run's training saw them: (N, C, H, W) in [-1, 1]."""
    import numpy as np
    import torch

    from condsynth.data.dataset import image_to_tensor
    from condsynth.data.io import read_image
    from condsynth.data.sources import to_channels
    from condsynth.data.transforms import apply_image, draw_params

    images = []
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such image file. Fix: give image files to classify.")
        image = to_channels(read_image(path), config.data.channels)
        params = draw_params(image.shape[:2], config.data, False, np.random.default_rng(0),
                             1, path)
        image = apply_image(image, params)
        images.append(image_to_tensor(image[..., None] if image.ndim == 2 else image))
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) > 1:
        raise ConfigError(f"the images came out in several sizes {sorted(shapes)}; the run's "
                          f"data.preprocess is {config.data.preprocess}. Fix: give images of "
                          "one size.")
    return torch.stack(images)


def class_names(config: Config, count: int) -> list[str]:
    """The class names of the run's training data when it can still be read, else ids."""
    from condsynth.errors import CondsynthError

    if config.data.root:
        try:
            from condsynth.data.sources import describe_source

            names = describe_source(config.data, "train").class_names
            if len(names) == count:
                return list(names)
        except CondsynthError:
            pass
    return [str(i) for i in range(count)]


def cmd_classify(args: argparse.Namespace) -> int:
    from condsynth.api import load
    from condsynth.metrics.accuracy import classifies

    method = load(args.run, device=args.device)
    if not classifies(method):
        raise ConfigError(f"{args.run} is a {method.config.method} run, which does not classify "
                          "images. Fix: give a run of a classifying method (improved_gan).")
    probabilities = method.classify(read_images(args.images, method.config)).cpu()
    names = class_names(method.config, probabilities.shape[1])
    rows = []
    for path, probs in zip(args.images, probabilities, strict=True):
        best = int(probs.argmax())
        rows.append({"file": path, "class": best, "name": names[best],
                     "probability": round(float(probs[best]), 6),
                     "probabilities": {n: round(float(p), 6) for n, p in zip(names, probs,
                                                                              strict=True)}})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["file"]) for r in rows)
    for r in rows:
        print(f"{r['file']:<{width}}  {r['class']:>3}  {r['name']}  ({r['probability']:.3f})")
    return 0
