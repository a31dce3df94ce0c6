"""Classification accuracy of a run that classifies (the semi-supervised K+1 GAN's
discriminator), on the labelled items of a split, and the raw-pixel logistic-regression
baseline it is compared with."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from condsynth.errors import CondsynthError


def classifies(method: Any) -> bool:
    """Whether ``method`` has a classifier (``classify``: images → class probabilities)."""
    return callable(getattr(method, "classify", None))


def classification_accuracy(method: Any, dataset: Any, batch_size: int = 500,
                            progress: bool = False) -> dict[str, Any]:
    """Accuracy and error rate of ``method.classify`` on every item of ``dataset`` (items
    with ``image`` and ``class``; -1 = unlabelled items are skipped).

    Returns:
        ``{"accuracy", "error", "correct", "count", "per_class", "classifier"}`` where
        ``per_class`` is the accuracy of each class id (None for a class with no items).
    """
    if not classifies(method):
        raise CondsynthError(f"accuracy needs a run that classifies; {method.name} does not. "
                             "Fix: evaluate an improved_gan run, or leave accuracy out of "
                             "--metrics.")
    indices = [i for i in range(len(dataset)) if getattr(dataset, "classes", None) is None
               or int(dataset.classes[i]) >= 0]
    if getattr(dataset, "classes", None) is None or not indices:
        raise CondsynthError("accuracy needs labelled images (class data: class folders, IDX "
                             "files) in the evaluated split")
    k = method.config.model.num_classes
    correct = torch.zeros(k, dtype=torch.int64)
    total = torch.zeros(k, dtype=torch.int64)
    chunks = range(0, len(indices), batch_size)
    for start in tqdm(chunks, disable=not progress, desc="accuracy", unit="batch"):
        items = [dataset[i] for i in indices[start:start + batch_size]]
        images = torch.stack([item["image"] for item in items])
        labels = torch.stack([item["class"] for item in items])
        if int(labels.max()) >= k:
            raise CondsynthError(f"the data holds class {int(labels.max())} but the model knows "
                                 f"{k} classes. Fix: evaluate on the data it was trained on.")
        predicted = method.classify(images).argmax(1).cpu()
        total += torch.bincount(labels, minlength=k)
        correct += torch.bincount(labels[predicted == labels], minlength=k)
    count = int(total.sum())
    accuracy = int(correct.sum()) / count
    averaged = getattr(method.config.model, "ema_decay", 0) > 0
    return {"accuracy": accuracy, "error": 1 - accuracy, "correct": int(correct.sum()),
            "count": count,
            "per_class": [None if t == 0 else int(c) / int(t)
                          for c, t in zip(correct.tolist(), total.tolist(), strict=True)],
            "classifier": ("averaged discriminator (EMA of its parameters)" if averaged
                           else "discriminator")}


def logistic_regression(x: Tensor, y: Tensor, num_classes: int, c: float = 1.0,
                        max_iter: int = 500) -> Tensor:
    """Multinomial logistic regression with an L2 penalty, fitted to the optimum by L-BFGS:
    minimises ``0.5 ||W||^2 + c * sum_i CE(W x_i + b, y_i)`` (scikit-learn's
    ``LogisticRegression()`` objective: C = 1, the bias unpenalised). ``x`` (N, D) features,
    ``y`` (N,) int64. Returns the (D + 1, K) weights, bias last (float64)."""
    x = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)
    weights = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], lr=1, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def objective() -> Tensor:
        optimizer.zero_grad()
        loss = (0.5 * weights[:-1].square().sum()
                + c * torch.nn.functional.cross_entropy(x @ weights, y, reduction="sum"))
        loss.backward()
        return loss

    optimizer.step(objective)
    return weights.detach()


def logistic_predict(weights: Tensor, x: Tensor) -> Tensor:
    """Class ids (N,) of features ``x`` (N, D) under :func:`logistic_regression` weights."""
    return (x.double() @ weights[:-1] + weights[-1]).argmax(1)
