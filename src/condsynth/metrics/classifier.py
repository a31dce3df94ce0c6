"""Domain classifiers: the feature network of FID, KID and the Inception Score when the
ImageNet Inception network does not fit the data (grey 28x28 garments, digits, a few classes).

The Inception Score (Salimans et al., 2016) is ``exp(E_x KL(p(y|x) || p(y)))`` for *some*
classifier ``p(y|x)``; the paper used ImageNet's Inception, and FID / KID (Heusel et al., 2017;
Bińkowski et al., 2018) use its pool features. The same formulas work with any network trained
on the data's own classes, which is how scores on MNIST-like data are usually reported. This
module gives two such networks behind one interface (:class:`ImageClassifier`):

- :class:`DomainClassifier`: condsynth's own small CNN (:class:`DomainCNN`), trained on the
  labelled real data by :func:`train_classifier` (``condsynth classifier train``) and stored as
  ``FILE.safetensors`` plus ``FILE.json`` (architecture, classes, size, channels, input
  normalisation, train and test accuracy);
- :class:`RunClassifier`: the classifier inside a trained run, for methods that expose one
  (e.g. a semi-supervised K+1 discriminator), through the hook described there.

Every classifier takes images in [-1, 1] (float) or 0..255 (uint8), (B, C, H, W) with C 1 or 3
and any H, W, and converts them to its own input: RGB to grey by ITU-R 601 luma (the weights of
PIL's "L" mode, which the data sources use), grey to RGB by repetition, then a bilinear,
antialiased resize to its ``size`` x ``size`` when the size differs.

Scores from a domain classifier are comparable only between evaluations with the same
classifier file: reports name the file, its SHA-256 prefix, the classes and its test accuracy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.errors import CheckpointError, CondsynthError, ConfigError, DataError

CLASSIFIER_FORMAT = "condsynth-classifier"
CLASSIFIER_FORMAT_VERSION = 1
NORMALISATION = "minus1_1"          # network input = pixel / 127.5 - 1
MAX_DEFAULT_SIZE = 64               # the default input size: the data's, at most this
TRAIN_ACCURACY_IMAGES = 10_000      # train accuracy is measured on at most this many images
HELD_OUT_FRACTION = 0.1             # without a test/val split, this part of train is held out
_LUMA = (0.299, 0.587, 0.114)       # ITU-R 601, as PIL's "L" conversion
DOMAIN_CLASSIFIER_NOTE = ("FID, KID and the Inception Score were computed with a domain "
                          "classifier, not the ImageNet Inception network: they are comparable "
                          "only with scores from the same classifier file, not with published "
                          "numbers.")


# ------------------------------------------------------------------------------------ network


class DomainCNN(nn.Module):
    """A small VGG-style CNN for a dataset's classes.

    Two stages of 3x3 convolutions with batch norm and ReLU, each followed by 2x2 max pooling
    (one convolution of ``width`` channels, then two of ``2 * width``), a last convolution of
    ``4 * width`` channels, adaptive average pooling to 4x4, then a fully connected hidden layer
    of ``feature_dim`` units (ReLU; the *features*) and the class logits.

    Args:
        in_channels: image channels (1 or 3).
        num_classes: classes K.
        width: channels of the first convolution.
        feature_dim: units of the hidden layer whose activations are the features.
        dropout: dropout before the last layer (training only).
    Forward: (B, in_channels, H, W) images in [-1, 1] -> ((B, feature_dim) features,
    (B, K) logits).
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 16,
                 feature_dim: int = 128, dropout: float = 0.3) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *conv(in_channels, width), nn.MaxPool2d(2),                   # (B, w, H/2, W/2)
            *conv(width, 2 * width), *conv(2 * width, 2 * width), nn.MaxPool2d(2),
            *conv(2 * width, 4 * width), nn.AdaptiveAvgPool2d(4))         # (B, 4w, 4, 4)
        self.hidden = nn.Linear(4 * width * 16, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = F.relu(self.hidden(self.body(x).flatten(1)))         # (B, F)
        return features, self.head(self.dropout(features))             # (B, K)


# ------------------------------------------------------------------------ the common interface


def convert_images(images: Tensor, channels: int, size: int | tuple[int, int] | None,
                   ) -> Tensor:
    """(B, C, H, W) float in [-1, 1] or uint8 0..255, C 1 or 3 -> (B, ``channels``, size, size)
    float32 in [-1, 1]: RGB to grey by ITU-R 601 luma, grey to RGB by repetition, bilinear
    antialiased resize when the size differs (``size`` None keeps it)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"a classifier takes (B, C, H, W) images with C = 1 or 3, found shape "
                        f"{tuple(images.shape)}")
    x = images.float().div(127.5).sub(1.0) if images.dtype == torch.uint8 else images.float()
    if x.shape[1] == 3 and channels == 1:
        weights = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        x = (x * weights).sum(dim=1, keepdim=True)
    elif x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(x.shape[-2:]) != hw:
            x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


class ImageClassifier:
    """A classifier of images, as FID / KID / IS use it and as code calls it.

    Attributes:
        classes: the K class names.
        size: the input size (images are resized to ``size`` x ``size``); None = any size.
        channels: the input channels (1 or 3).
        name: how reports name it.
        tag: a short key of the exact weights (feature cache, reports).
        device: where it runs.
    Methods take images (B, C, H, W) in [-1, 1] (or uint8), C 1 or 3, any H and W.
    """

    classes: list[str]
    size: int | tuple[int, int] | None
    channels: int
    name: str
    tag: str
    device: torch.device

    def _outputs(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        """(features or None, logits) of prepared input."""
        raise NotImplementedError

    def prepare(self, images: Tensor) -> Tensor:
        """The network's input: see :func:`convert_images`."""
        return convert_images(images.to(self.device), self.channels, self.size)

    @torch.no_grad()
    def outputs(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """((B, F) features, (B, K) logits) in one pass."""
        features, logits = self._outputs(self.prepare(images))
        if features is None:
            raise CondsynthError(f"{self.name} gives class logits but no features, so it can "
                                 "score the Inception Score but not FID or KID. Fix: leave fid "
                                 "and kid out of --metrics, or use a classifier file.")
        return features.float(), logits.float()

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """(B, F) penultimate-layer features."""
        return self.outputs(images)[0]

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """(B, K) class logits."""
        return self._outputs(self.prepare(images))[1].float()

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """(B,) int64 predicted class ids (indices into :attr:`classes`)."""
        return self.logits(images).argmax(dim=1)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """What the evaluation's feature cache calls: uint8 batches -> (features, logits)."""
        return self.outputs(images)

    def describe(self) -> dict[str, Any]:
        """What reports say about the network."""
        raise NotImplementedError


class DomainClassifier(ImageClassifier):
    """A :class:`DomainCNN` read from a classifier file (see :func:`load_classifier`).

    Attributes:
        net: the network (eval mode).
        info: the JSON config written beside the weights.
        path: the weights file; sha256: its SHA-256.
    """

    def __init__(self, net: DomainCNN, info: dict[str, Any], path: Path, sha256: str,
                 device: torch.device | str = "cpu") -> None:
        self.net = net
        self.info = info
        self.path = path
        self.sha256 = sha256
        self.device = torch.device(device)
        self.classes = list(info["classes"])
        self.size = int(info["size"])
        self.channels = int(info["channels"])
        self.name = f"domain classifier {path.name} ({sha256[:12]})"
        # The feature cache's key: the weights and the config (its size and channels) alike.
        config = json.dumps(info, sort_keys=True).encode()
        self.tag = f"clf-{hashlib.sha256(sha256.encode() + config).hexdigest()[:16]}"

    def _outputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(x)

    @property
    def test_accuracy(self) -> float | None:
        return self.info.get("accuracy", {}).get("test")

    def describe(self) -> dict[str, Any]:
        accuracy = self.test_accuracy
        shown = "unknown" if accuracy is None else f"{100 * accuracy:.2f}%"
        return {"kind": "domain_classifier", "path": str(self.path.resolve()),
                "sha256": self.sha256, "classes": len(self.classes),
                "class_names": self.classes, "size": self.size, "channels": self.channels,
                "feature_dim": int(self.info["architecture"]["feature_dim"]),
                "test_accuracy": accuracy, "data": self.info.get("data"),
                "summary": f"domain classifier {self.path.name} (SHA-256 {self.sha256[:12]}…), "
                           f"{len(self.classes)} classes, {self.size}x{self.size}, test "
                           f"accuracy {shown}"}


# -------------------------------------------------------------------------------- files


def config_path_of(path: str | Path) -> Path:
    """The JSON config beside a classifier weights file: ``FILE.safetensors`` -> ``FILE.json``."""
    return Path(path).with_suffix(".json")


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> DomainClassifier:
    """A classifier written by :func:`train_classifier`: its ``.safetensors`` file (or the
    ``.json`` beside it, or a folder holding exactly one classifier), ready on ``device``."""
    from safetensors.torch import load_file

    path = _weights_file(Path(path).expanduser())
    config_path = config_path_of(path)
    if not config_path.is_file():
        raise CheckpointError(f"{path}: its config {config_path.name} is missing beside it. Fix: "
                              "keep the .json written by `condsynth classifier train` next to "
                              "the .safetensors file.")
    try:
        info = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err})") from None
    if not isinstance(info, dict) or info.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(f"{config_path} is not a condsynth classifier config (no \"format\": "
                              f"\"{CLASSIFIER_FORMAT}\"). Fix: pass a file written by "
                              "`condsynth classifier train`.")
    if info.get("format_version") != CLASSIFIER_FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: classifier format version "
                              f"{info.get('format_version')}, this condsynth reads version "
                              f"{CLASSIFIER_FORMAT_VERSION}. Fix: retrain it with this version.")
    arch = info["architecture"]
    if arch.get("name") != "DomainCNN":
        raise CheckpointError(f"{config_path}: unknown architecture {arch.get('name')!r}")
    net = DomainCNN(int(info["channels"]), len(info["classes"]), int(arch["width"]),
                    int(arch["feature_dim"]), float(arch.get("dropout", 0.0)))
    try:
        net.load_state_dict(load_file(str(path)))
    except Exception as err:  # noqa: BLE001 - unreadable or mismatched weights: one message
        raise CheckpointError(f"{path} could not be loaded as the classifier its config "
                              f"describes ({str(err).splitlines()[0]}). Fix: pass the file "
                              "written together with the config, or retrain.") from None
    from condsynth.metrics.inception import sha256_file

    return DomainClassifier(net.to(device).eval(), info, path, sha256_file(path), device)


def _weights_file(path: Path) -> Path:
    if path.is_dir():
        found = sorted(p for p in path.glob("*.safetensors") if config_path_of(p).is_file()
                       and _is_classifier_config(config_path_of(p)))
        if len(found) != 1:
            what = "no classifier" if not found else f"{len(found)} classifiers"
            raise CheckpointError(f"{path} holds {what} (a .safetensors file with its .json "
                                  "config). Fix: pass the classifier's .safetensors file.")
        return found[0]
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise CheckpointError(f"classifier file {path} does not exist. Fix: train one with "
                              "`condsynth classifier train --data DIR --out FILE.safetensors`.")
    return path


def _is_classifier_config(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == CLASSIFIER_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# ----------------------------------------------------------------------------- a run's classifier


class RunClassifier(ImageClassifier):
    """The classifier of a trained run, for methods that expose one.

    The hook: a method exposes a classifier by defining

    - ``classify_logits(images) -> (B, K)`` class logits (required), and
    - ``classifier_features(images) -> (B, F)`` features (optional; FID and KID need them),

    both on images (B, C, H, W) in [-1, 1] with C = the run's ``data.channels`` at the run's
    training crop size (H, W) = ``data.crop_hw``; the classes are ``condition.class_names``
    (else ``"0"``, ``"1"``, ...). A semi-supervised K+1 discriminator gives its K real-class
    logits (the fixed "generated" logit left out).
    """

    def __init__(self, method: Any, run_dir: Path, fingerprint: str) -> None:
        if not callable(getattr(method, "classify_logits", None)):
            raise CondsynthError(
                f"the {method.config.method} run {run_dir} has no classifier (its method does "
                "not define classify_logits). Fix: pass a classifier file from `condsynth "
                "classifier train --data DIR --out FILE.safetensors`, or a run of a method "
                "with a classifier (e.g. a semi-supervised discriminator).")
        self.method = method
        self.run_dir = run_dir
        self.device = torch.device(method.device)
        data = method.config.data
        self.channels = int(data.channels)
        self.size = data.crop_hw
        names = list(getattr(method.config.condition, "class_names", None) or [])
        count = getattr(method.config.condition, "num_classes", None) or len(names)
        self.classes = names if len(names) == count else [str(i) for i in range(count or 0)]
        self.name = f"classifier of run {run_dir.name} ({method.config.method})"
        self.tag = f"run-{fingerprint[:16]}"

    def _outputs(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        logits = self.method.classify_logits(x)
        features_of = getattr(self.method, "classifier_features", None)
        return (features_of(x) if callable(features_of) else None), logits

    def describe(self) -> dict[str, Any]:
        return {"kind": "run_classifier", "path": str(self.run_dir.resolve()),
                "method": self.method.config.method, "classes": len(self.classes),
                "class_names": self.classes, "fingerprint": self.tag,
                "summary": f"the classifier of run {self.run_dir.name} "
                           f"({self.method.config.method}), {len(self.classes)} classes"}


def load_feature_classifier(spec: str | Path, device: torch.device | str = "cpu",
                            ) -> ImageClassifier:
    """What ``--classifier RUN_OR_FILE`` names: a classifier file (``.safetensors`` / its
    ``.json``, or a folder holding one), or a run directory whose method exposes a classifier
    (see :class:`RunClassifier`)."""
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.yaml").is_file():
        from condsynth.api import load
        from condsynth.metrics.evaluate import run_fingerprint

        method = load(path, device=str(device))
        return RunClassifier(method, path, run_fingerprint(path, {}))
    return load_classifier(path, device)


# ------------------------------------------------------------------------------------ training


def _labelled_images(data_dir: str | Path, phase: str, layout: str, channels: int, size: int,
                     progress: bool) -> tuple[Tensor, Tensor, list[str]]:
    """(N, C, size, size) uint8 images, (N,) int64 classes and the class names of a split's
    labelled items (unlabelled ones are left out)."""
    from tqdm.auto import tqdm

    from condsynth.config import DataConfig
    from condsynth.data.sources import open_dataset

    data = DataConfig(root=str(data_dir), layout=layout, channels=channels, preprocess="fixed",
                      load_size=size, crop_size=size, flip=False)
    dataset = open_dataset(data, phase, train=False, seed=0)
    if dataset.classes is None:
        raise DataError(f"{data_dir}: the {dataset.source.layout} data has no class labels. A "
                        "classifier learns from labelled images. Fix: use class folders "
                        "(<class>/*.png), a dataset.json or MNIST-family IDX files.")
    keep = np.flatnonzero(dataset.classes >= 0)
    images = torch.empty((len(keep), channels, size, size), dtype=torch.uint8)
    for row, index in enumerate(tqdm(keep, desc=f"read {phase}", unit="image",
                                     disable=not progress, mininterval=1.0)):
        images[row] = dataset[int(index)]["image"].add(1.0).mul(127.5).round().clamp(0, 255)
    labels = torch.from_numpy(dataset.classes[keep].astype(np.int64))
    return images, labels, list(dataset.source.class_names)


def _default_size_channels(data_dir: str | Path, layout: str) -> tuple[int, int]:
    from condsynth.config import DataConfig
    from condsynth.data.sources import load_source

    source = load_source(DataConfig(root=str(data_dir), layout=layout), "train")
    first = source.read(0)
    channels = 1 if first.ndim == 2 else 3
    return min(max(first.shape[:2]), MAX_DEFAULT_SIZE), channels


@torch.no_grad()
def _accuracy(net: DomainCNN, images: Tensor, labels: Tensor, device: torch.device,
              batch_size: int = 500) -> float:
    net.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device).float().div(127.5).sub(1.0)
        correct += int((net(x)[1].argmax(1).cpu() == labels[start:start + batch_size]).sum())
    return correct / max(1, len(images))


def train_classifier(data_dir: str | Path, out: str | Path, *, size: int | None = None,
                     channels: int | None = None, steps: int | None = None,
                     epochs: float = 3.0, batch_size: int = 128, lr: float = 2e-3,
                     width: int = 16, feature_dim: int = 128, layout: str = "auto",
                     seed: int = 0, device: str | None = None, progress: bool = True) -> Path:
    """Train a :class:`DomainCNN` on the labelled real images of ``data_dir`` and write it.

    The training split is read through the data sources (class folders, ``dataset.json``,
    MNIST-family IDX files; unlabelled items skipped), resized to ``size`` x ``size`` and held
    in memory as uint8; the network is trained with Adam, cross-entropy and a cosine learning
    rate decay, without augmentation (a flip would change a digit's class). It is then scored
    on the test split (else val; else a seeded 10 % of train held out from training).

    Args:
        data_dir: the dataset folder.
        out: the weights file to write (``.safetensors``); its config goes to ``.json`` beside.
        size: input size (default: the data's larger side, at most 64).
        channels: 1 or 3 (default: 1 for IDX files and grey arrays, else 3).
        steps: optimizer steps (default: ``epochs`` passes over the training images).
        epochs: passes over the training images when ``steps`` is not given.
        batch_size, lr: Adam's batch and peak learning rate.
        width, feature_dim: the network's size (see :class:`DomainCNN`).
        layout: the data layout (default: detect).
        seed: fixes the initialization, the batches and a held-out split.
        device: ``cpu``, ``cuda`` or ``auto`` (default).
        progress: progress bars.
    Returns:
        The weights file written.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from condsynth.data.layouts import available_phases
    from condsynth.runtime import resolve_device

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {out}: a classifier is written as a .safetensors file (with "
                          "its .json config beside it). Fix: end the name with .safetensors, "
                          "e.g. --out classifier.safetensors.")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder. Fix: give a file name ending in "
                          ".safetensors.")
    for name, value in (("batch size", batch_size), ("width", width),
                        ("feature dim", feature_dim)):
        if value < 1:
            raise ConfigError(f"the {name} must be at least 1, found {value}")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be at least 1, found {steps}")
    if steps is None and not epochs > 0:
        raise ConfigError(f"--epochs must be positive, found {epochs}")
    if channels not in (None, 1, 3):
        raise ConfigError(f"--channels must be 1 (grey) or 3 (RGB), found {channels}")
    if size is not None and size < 8:
        raise ConfigError(f"--size must be at least 8, found {size}")
    target = resolve_device(device or "auto")
    began = time.perf_counter()
    default_size, default_channels = _default_size_channels(data_dir, layout)
    size, channels = size or default_size, channels or default_channels
    images, labels, classes = _labelled_images(data_dir, "train", layout, channels, size,
                                               progress)
    if len(classes) < 2:
        raise DataError(f"{data_dir}: a classifier needs at least 2 classes, found "
                        f"{len(classes)}")
    if len(images) < 2:
        raise DataError(f"{data_dir}: the training split has fewer than 2 labelled images")
    phases = available_phases(data_dir, layout)
    test_phase = next((p for p in ("test", "val") if p in phases), None)
    generator = torch.Generator().manual_seed(seed)
    if test_phase:
        test_images, test_labels, test_classes = _labelled_images(
            data_dir, test_phase, layout, channels, size, progress)
        if test_classes != classes:
            raise DataError(f"{data_dir}: the {test_phase} split names other classes than train "
                            f"({test_classes[:5]} vs {classes[:5]}). Fix: use the same classes "
                            "in every split.")
        test_name = test_phase
    else:
        order = torch.randperm(len(images), generator=generator)
        held = max(1, int(len(images) * HELD_OUT_FRACTION))
        test_images, test_labels = images[order[:held]], labels[order[:held]]
        images, labels = images[order[held:]], labels[order[held:]]
        test_name = f"held out ({HELD_OUT_FRACTION:.0%} of train, seed {seed})"
    total = steps or max(1, math.ceil(epochs * len(images) / batch_size))
    torch.manual_seed(seed)
    net = DomainCNN(channels, len(classes), width, feature_dim).to(target)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    bar = tqdm(total=total, desc="classifier", unit="step", disable=not progress)
    step, loss_value = 0, float("nan")
    net.train()
    while step < total:
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2 <= len(order):
                continue                          # batch norm needs two images
            x = images[index].to(target).float().div(127.5).sub(1.0)
            loss = F.cross_entropy(net(x)[1], labels[index].to(target))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            loss_value = float(loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if step >= total:
                break
    bar.close()
    train_subset = torch.randperm(len(images), generator=generator)[:TRAIN_ACCURACY_IMAGES]
    accuracy = {"train": _accuracy(net, images[train_subset], labels[train_subset], target),
                "train_images": len(train_subset),
                "test": _accuracy(net, test_images, test_labels, target),
                "test_images": len(test_images), "test_split": test_name}
    info: dict[str, Any] = {
        "format": CLASSIFIER_FORMAT, "format_version": CLASSIFIER_FORMAT_VERSION,
        "architecture": {"name": "DomainCNN", "width": width, "feature_dim": feature_dim,
                         "dropout": 0.3},
        "classes": classes, "size": size, "channels": channels,
        "normalisation": {"range": NORMALISATION,
                          "input": "pixel / 127.5 - 1; RGB to grey by ITU-R 601 luma, grey to "
                                   "RGB by repetition; bilinear antialiased resize to size x "
                                   "size"},
        "accuracy": accuracy,
        "training": {"steps": total, "batch_size": batch_size, "lr": lr,
                     "schedule": "cosine", "optimizer": "adam", "seed": seed,
                     "images": len(images), "final_loss": loss_value, "layout": layout},
        "data": str(Path(data_dir).resolve()),
        "seconds": round(time.perf_counter() - began, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    _atomic_write(out, lambda p: save_file(tensors, str(p)))
    _atomic_write(config_path_of(out), lambda p: p.write_text(json.dumps(info, indent=2) + "\n"))
    return out


def classifier_accuracy(classifier: ImageClassifier, data_dir: str | Path,
                        phase: str | None = None, layout: str = "auto", batch_size: int = 500,
                        progress: bool = True) -> dict[str, Any]:
    """Accuracy of ``classifier`` on a split of ``data_dir`` (default: test, else val, else
    train), whose class names must be the classifier's."""
    from condsynth.data.layouts import available_phases

    phases = available_phases(data_dir, layout)
    phase = phase or next(p for p in ("test", "val", "train") if p in phases)
    if phase not in phases:
        raise DataError(f"{data_dir} has no {phase} split (it has {', '.join(phases)})")
    size = classifier.size if isinstance(classifier.size, int) else max(classifier.size or (64,))
    images, labels, classes = _labelled_images(data_dir, phase, layout, classifier.channels,
                                               size, progress)
    if classes != classifier.classes:
        raise DataError(f"{data_dir}: its classes ({', '.join(classes[:6])}...) are not the "
                        f"classifier's ({', '.join(classifier.classes[:6])}...). Fix: test on "
                        "the data the classifier was trained for.")
    correct = 0
    for start in range(0, len(images), batch_size):
        predicted = classifier.predict(images[start:start + batch_size]).cpu()
        correct += int((predicted == labels[start:start + batch_size]).sum())
    return {"phase": phase, "images": len(images), "accuracy": correct / max(1, len(images))}


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
