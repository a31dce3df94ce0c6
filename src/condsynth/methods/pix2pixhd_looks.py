"""pix2pixHD's looks: encode a dataset's instance features with a trained run's encoder E and
cluster them per class with K-means (the official ``encode_features.py``), what
``condsynth features`` runs. The method itself only *uses* the centres
(:meth:`~condsynth.methods.pix2pixhd.Pix2PixHD.feature_map`, ``generate``); this module makes
them and writes them into the run directory (``features.npz``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from condsynth.errors import CondsynthError, DataError
from condsynth.methods.pix2pixhd import FEATURES_FILE, Pix2PixHD, Pix2PixHDConfig, class_of_ids

__all__ = ["compute_features", "kmeans"]


def compute_features(run_dir: str | Path, data: str | Path | Iterable[dict[str, Any]],
                     n_clusters: int | None = None, device: str = "auto", seed: int = 0,
                     min_area: float = 1.0 / 64) -> Path:
    """Encode the training set with E and cluster each class's instance features (K-means), the
    step that makes looks selectable at inference (the official ``encode_features.py``).

    Every instance contributes one feature vector (E's output is constant over an instance).
    As the official code, instances covering at most ``min_area`` of their image (1/64) are
    left out of the clustering, and a class with fewer instances than clusters gets one centre
    per distinct instance.

    Args:
        run_dir: a pix2pixhd run trained with ``instance_feat`` or ``label_feat``.
        data: the dataset folder (its ``train`` split is read with the run's condition settings,
            centre crops, no flips), or any iterable of items ``{"label": (H, W) int64,
            "instance": (H, W) int64, "image": (3, H, W) in [-1, 1]}``.
        n_clusters: clusters per class; None = the run's ``model.n_clusters``.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: seed of the K-means initialization (the result is deterministic).
        min_area: smallest instance area (fraction of the image) that is clustered.
    Returns:
        The path of the centres file written into the run directory (``features.npz``).
    """
    from condsynth.api import load

    run_dir = Path(run_dir)
    method = load(run_dir, device=device)
    if not isinstance(method, Pix2PixHD) or method.encoder is None:
        raise CondsynthError(f"{run_dir}: compute_features needs a pix2pixhd run trained with "
                             "model.instance_feat (or label_feat); this run has no encoder.")
    cfg: Pix2PixHDConfig = method.config.model
    if isinstance(data, (str, Path)):
        items: Iterable[dict[str, Any]] = _training_items(method, Path(data))
    else:
        items = data
    per_class: dict[int, list[np.ndarray]] = {}
    seen = 0
    for item in items:
        seen += 1
        label = item["label"].unsqueeze(0).to(method.device)
        instance = item.get("instance")
        instance = None if instance is None else instance.unsqueeze(0).to(method.device)
        ids = method._pool_ids(label, instance, str(item.get("path", f"item {seen}")))
        method._check_size(ids.shape[-2], ids.shape[-1], str(item.get("path", f"item {seen}")))
        with torch.no_grad():
            features = method.encoder(item["image"].unsqueeze(0).to(method.device), ids)[0]
        unique, inverse, counts = torch.unique(ids[0], return_inverse=True, return_counts=True)
        # Any pixel of an instance holds its pooled vector; take the first one of each.
        first = torch.full((len(unique),), ids[0].numel(), device=ids.device, dtype=torch.int64)
        first = first.scatter_reduce(0, inverse.reshape(-1),
                                     torch.arange(ids[0].numel(), device=ids.device), "amin")
        vectors = features.reshape(cfg.feat_num, -1)[:, first].T.float().cpu().numpy()
        area = (counts.float() / ids[0].numel()).cpu().numpy()
        for i, vector, fraction in zip(unique.tolist(), vectors, area, strict=True):
            if fraction > min_area:
                per_class.setdefault(class_of_ids(i), []).append(vector)
    if seen == 0:
        raise DataError(f"compute_features: no training items found in {data}. Fix: give the "
                        "dataset folder the run was trained on.")
    k = cfg.n_clusters if n_clusters is None else n_clusters
    centres = {c: kmeans(np.stack(v), k, seed=seed).astype(np.float32)
               for c, v in sorted(per_class.items())}
    method.set_cluster_centres(centres)
    path = run_dir / FEATURES_FILE
    staging = path.with_name(FEATURES_FILE + ".tmp")
    staging.write_bytes(method.extra_files()[FEATURES_FILE])
    os.replace(staging, path)     # a reader never sees half a file
    return path


def _training_items(method: Pix2PixHD, root: Path) -> Iterable[dict[str, Any]]:
    from dataclasses import replace

    from condsynth.data.dataset import PairedDataset

    config = method.config
    data = replace(config.data, root=str(root))
    return PairedDataset(data, config.condition, phase="train", train=False,
                         size_multiple=method.size_multiple(), seed=0)


def kmeans(points: np.ndarray, k: int, seed: int = 0, n_init: int = 10,
           max_iter: int = 300) -> np.ndarray:
    """Deterministic K-means (k-means++ seeding, Lloyd iterations, best of ``n_init`` runs).

    Args:
        points: (N, D) array.
        k: clusters; reduced to the number of distinct points when there are fewer.
    Returns:
        (k, D) float64 centres, sorted by their first coordinate so the result does not depend
        on the order the runs found them in.
    """
    points = np.asarray(points, dtype=np.float64)
    distinct = np.unique(points, axis=0)
    k = min(k, len(distinct))
    if k <= 0:
        return np.zeros((0, points.shape[1]))
    if k == len(distinct):
        centres = distinct
    else:
        best, best_inertia = None, np.inf
        for run in range(n_init):
            rng = np.random.default_rng([seed, run])
            centres = _kmeans_pp(points, k, rng)
            assign = None
            for _ in range(max_iter):
                dist = ((points[:, None, :] - centres[None]) ** 2).sum(-1)   # (N, k)
                new_assign = dist.argmin(1)
                if assign is not None and np.array_equal(new_assign, assign):
                    break
                assign = new_assign
                for c in range(k):
                    members = points[assign == c]
                    # An emptied cluster restarts at the point worst served by the others.
                    centres[c] = (members.mean(0) if len(members)
                                  else points[dist.min(1).argmax()])
            inertia = ((points - centres[assign]) ** 2).sum()
            if inertia < best_inertia - 1e-12:
                best, best_inertia = centres.copy(), inertia
        centres = best
    return centres[np.lexsort(centres.T[::-1])]


def _kmeans_pp(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre drawn with probability proportional to the squared
    distance to the nearest chosen one."""
    centres = [points[rng.integers(len(points))]]
    closest = ((points - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = closest.sum()
        index = rng.choice(len(points), p=closest / total) if total > 0 else rng.integers(
            len(points))
        centres.append(points[index])
        closest = np.minimum(closest, ((points - points[index]) ** 2).sum(1))
    return np.array(centres)
