"""``condsynth probe``: how good a GAN's discriminator is as a feature extractor, the DCGAN
paper's representation test (Radford et al., 2016, section 5.1; its SVHN analysis script).

Every convolution of the discriminator is max-pooled to a 4x4 grid, flattened and
concatenated; a linear classifier trained on N labelled images per class is scored on the test
split. Beside it, for scale, the same classifier on raw pixels and on the features of an
untrained discriminator of the same shape. As in the paper, batch-norm statistics are
re-estimated on the training images before features are taken.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from condsynth.errors import ConfigError, DataError
from condsynth.methods.base import Method

Classifier = Literal["logistic", "svm"]


# ----------------------------------------------------------------------------- features


def conv_features(method: Method, images: Tensor, grid: int = 4) -> Tensor:
    """(N, C, H, W) images → (N, F): each convolution output of the discriminator max-pooled to
    ``grid`` x ``grid`` and flattened, concatenated in layer order."""
    discriminator = method.networks()["discriminator"]
    outputs: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
             for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    try:
        method.discriminate(images)
    finally:
        for hook in hooks:
            hook.remove()
    if not outputs:
        raise ConfigError(f"{method.config.method}'s discriminator has no convolutions to probe")
    pooled = [F.adaptive_max_pool2d(o, min(grid, o.shape[-1])).flatten(1) for o in outputs]
    return torch.cat(pooled, 1)


@torch.no_grad()
def reestimate_batch_norm(method: Method, images: Tensor, batch_size: int = 100) -> int:
    """Recompute the discriminator's batch-norm running statistics over ``images`` (a
    cumulative average of the batches' statistics). Returns the layers updated."""
    layers = [m for m in method.networks()["discriminator"].modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers:
        return 0
    saved = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None                    # cumulative moving average
        m.train()
    for start in range(0, len(images), batch_size):
        method.discriminate(images[start:start + batch_size])
    for m, momentum in zip(layers, saved, strict=True):
        m.momentum = momentum
        m.eval()
    return len(layers)


@torch.no_grad()
def extract(fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int = 200) -> Tensor:
    return torch.cat([fn(images[i:i + batch_size]).float().cpu()
                      for i in range(0, len(images), batch_size)])


# ----------------------------------------------------------------------------- classifiers


def fit_linear(x: Tensor, y: Tensor, num_classes: int, kind: Classifier, l2: float,
               iters: int = 200) -> tuple[Tensor, Tensor]:
    """A linear classifier (W, b) on standardized features: multinomial logistic regression,
    or a one-vs-rest L2-SVM (squared hinge), each with an L2 penalty ``l2``·‖W‖², by L-BFGS."""
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    x, y = x.double(), y.long()
    signs = F.one_hot(y, num_classes).double() * 2 - 1               # +1 own class, -1 others
    optimizer = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        scores = x @ w + b
        if kind == "svm":
            data = F.relu(1 - signs * scores).pow(2).sum(1).mean()
        else:
            data = F.cross_entropy(scores, y)
        loss = data + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach(), b.detach()


def standardize(train: Tensor, *others: Tensor) -> list[Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def accuracy(x: Tensor, y: Tensor, w: Tensor, b: Tensor) -> float:
    return float(((x.double() @ w + b).argmax(1) == y).double().mean())


def select_l2(x: Tensor, y: Tensor, num_classes: int, kind: Classifier,
              grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1), folds: int = 3,
              seed: int = 0) -> float:
    """The penalty with the best ``folds``-fold cross-validated accuracy on the labelled set
    (the paper picks the SVM's C on a validation set)."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    parts = order.chunk(folds)
    best, best_acc = grid[0], -1.0
    for l2 in grid:
        scores = []
        for k in range(folds):
            held = parts[k]
            kept = torch.cat([p for j, p in enumerate(parts) if j != k])
            xa, xb = standardize(x[kept], x[held])
            w, b = fit_linear(xa, y[kept], num_classes, kind, l2, iters=100)
            scores.append(accuracy(xb, y[held], w, b))
        if np.mean(scores) > best_acc:
            best, best_acc = l2, float(np.mean(scores))
    return best


def labelled_subset(labels: Tensor, per_class: int, num_classes: int, seed: int) -> Tensor:
    """Indices of ``per_class`` items of every class, drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(num_classes):
        own = (labels == c).nonzero().flatten()
        if len(own) < per_class:
            raise DataError(f"class {c} has {len(own)} training images, fewer than "
                            f"--labels-per-class {per_class}")
        picks.append(own[torch.randperm(len(own), generator=g)[:per_class]])
    return torch.cat(picks)


# ----------------------------------------------------------------------------- the probe


def load_split(config: Any, data_root: str, phase: str, limit: int | None,
               size_multiple: int) -> tuple[Tensor, Tensor]:
    """Images (N, C, H, W) and class ids (N,) of a split, as the run was trained on them."""
    from condsynth.data.factory import open_dataset

    data = dataclasses.replace(config.data, root=str(data_root), flip=False, max_items=None)
    dataset = open_dataset(dataclasses.replace(config, data=data), phase=phase, train=False,
                           size_multiple=size_multiple)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    images, labels = [], []
    for i in tqdm(range(count), desc=f"reading {phase}", unit="image", leave=False):
        item = dataset[i]
        if "class" not in item:
            raise DataError(f"{data_root}: the probe needs class labels (class folders, "
                            "IDX labels or a dataset.json); this dataset gives none")
        images.append(item["image"])
        labels.append(int(item["class"]))
    return torch.stack(images), torch.tensor(labels)


def probe(run_dir: str | Path, data_root: str | Path, labels_per_class: int = 100,
          classifier: Classifier = "logistic", draws: int = 1, max_test: int | None = None,
          max_train: int | None = 20000, seed: int = 0, device: str = "auto",
          out: str | Path | None = None) -> dict[str, Any]:
    """Accuracy on the test split of a linear classifier trained on ``labels_per_class``
    labels per class, on the trained D's features, an untrained D's and raw pixels; the mean
    (and spread) over ``draws`` label draws. Written to ``out/probe.json`` when given."""
    from condsynth.api import load
    from condsynth.registry import build_method

    method = load(run_dir, device=device)
    if "discriminator" not in method.network_names:
        raise ConfigError(f"{method.config.method} has no discriminator to probe")
    config = method.config
    train_x, train_y = load_split(config, str(data_root), "train", max_train,
                                  method.size_multiple())
    test_x, test_y = load_split(config, str(data_root), "test", max_test,
                                method.size_multiple())
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    torch.manual_seed(seed + 1)
    untrained = build_method(config).to(method.device).eval()
    dev = method.device
    # Only the labelled images of the draws are needed from the training split.
    draws_picks = [labelled_subset(train_y, labels_per_class, num_classes, seed + d)
                   for d in range(draws)]
    needed = torch.unique(torch.cat(draws_picks))
    row = torch.full((len(train_y),), -1, dtype=torch.long)
    row[needed] = torch.arange(len(needed))
    feature_sets: dict[str, tuple[Tensor, Tensor]] = {}
    for name, model in (("trained D", method), ("untrained D", untrained)):
        reestimate_batch_norm(model, train_x[:5000].to(dev))
        features = lambda b, m=model: conv_features(m, b.to(dev))      # noqa: E731
        feature_sets[name] = (extract(features, train_x[needed]), extract(features, test_x))
    feature_sets["raw pixels"] = (train_x[needed].flatten(1), test_x.flatten(1))
    results: dict[str, Any] = {
        "run": str(run_dir), "data": str(data_root), "labels_per_class": labels_per_class,
        "classifier": classifier, "draws": draws, "test_images": len(test_y),
        "features": {name: int(tr.shape[1]) for name, (tr, _) in feature_sets.items()},
        "accuracy": {}}
    for name, (train_f, test_f) in feature_sets.items():
        scores = []
        for draw, picks in enumerate(draws_picks):
            x, y = train_f[row[picks]], train_y[picks]
            l2 = select_l2(x, y, num_classes, classifier, seed=seed + draw)
            xs, ts = standardize(x, test_f)
            w, b = fit_linear(xs, y, num_classes, classifier, l2)
            scores.append(accuracy(ts, test_y, w, b))
        results["accuracy"][name] = {"mean": float(np.mean(scores)),
                                     "std": float(np.std(scores)), "draws": scores}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "probe.json").write_text(json.dumps(results, indent=2))
    return results


def format_probe(results: dict[str, Any]) -> str:
    lines = [f"probe: linear {results['classifier']} on {results['labels_per_class']} labels per "
             f"class, {results['test_images']} test images, {results['draws']} label draw(s)"]
    for name, acc in results["accuracy"].items():
        spread = f" ± {acc['std'] * 100:.1f}" if results["draws"] > 1 else ""
        lines.append(f"  {name:12s} {acc['mean'] * 100:5.1f}%{spread}  "
                     f"({results['features'][name]} features)")
    return "\n".join(lines)
