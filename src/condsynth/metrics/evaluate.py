"""Evaluation runs: synthesize a run's test split, or take two image folders, and score them.

``evaluate_run`` writes ``real/``, ``fake/`` and ``labels/`` pictures into the output folder
(skipped on a re-run when the run, the data and the settings are unchanged), then scores them;
``evaluate_folders`` scores two existing folders. Both write ``eval.json`` and ``eval.html``
(:mod:`condsynth.metrics.report`).

Inception features are cached per image folder and weights file, in chunks of
``CHUNK_IMAGES`` images, each written atomically with the names, sizes and modification times
of its images: an interrupted evaluation of a large set resumes at the first missing chunk, and
a changed image invalidates only its own chunk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from condsynth.conditions import SPATIAL_KINDS, condition_of
from condsynth.data.io import read_image
from condsynth.data.layouts import IMAGE_SUFFIXES
from condsynth.errors import CondsynthError, DataError
from condsynth.metrics.classifier import (
    DOMAIN_CLASSIFIER_NOTE,
    ImageClassifier,
    load_feature_classifier,
)
from condsynth.metrics.fid import fid_from_features, kernel_inception_distance
from condsynth.metrics.inception import (
    NONSTANDARD_NOTE,
    InceptionWeights,
    load_inception,
    resolve_inception_weights,
)
from condsynth.metrics.inception_score import inception_score
from condsynth.metrics.msssim import mean_pairwise_ms_ssim, usable_scales
from condsynth.metrics.segmentation import (
    Segmenter,
    confusion_matrix,
    load_segmenter,
    segmentation_scores,
)
from condsynth.metrics.swd import DescriptorSet, swd_between

ALL_METRICS = ("fid", "kid", "is", "swd", "miou", "msssim", "accuracy")
INCEPTION_METRICS = {"fid", "kid", "is"}
CHUNK_IMAGES = 256
CACHE_ENV = "CONDSYNTH_CACHE"


@dataclass
class EvalOptions:
    """Settings shared by both kinds of evaluation.

    Args:
        metrics: which of :data:`ALL_METRICS` to compute.
        inception_weights: the FID Inception file (None: the usual caches).
        allow_nonstandard_weights: score with other weights, marked as not comparable.
        segmenter: what :func:`~condsynth.metrics.segmentation.load_segmenter` takes (miou).
        segmenter_input: override of the segmenter's input range.
        batch_size: images per network call.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: fixes KID subsets, SWD neighbourhoods and directions, and multimodal samples.
        cache_dir: feature cache root (None: ``$CONDSYNTH_CACHE`` or ``~/.cache/condsynth``).
        use_cache: read and write the feature cache.
        classifier: the feature network of FID, KID and IS instead of Inception: a classifier
            file or a run whose method exposes one
            (:func:`~condsynth.metrics.classifier.load_feature_classifier`).
        kid_subsets, kid_subset_size: KID's random subsets (torch-fidelity's defaults).
        is_splits: Inception Score splits.
        grid: items in the page's sample grid.
        progress: tqdm progress bars.
    """

    metrics: Sequence[str] = ("fid", "kid", "is", "swd")
    inception_weights: str | None = None
    allow_nonstandard_weights: bool = False
    segmenter: str | None = None
    segmenter_input: str | None = None
    classifier: str | None = None
    batch_size: int = 8
    device: str = "auto"
    seed: int = 0
    cache_dir: str | None = None
    use_cache: bool = True
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    grid: int = 8
    progress: bool = True

    def check(self) -> None:
        unknown = [m for m in self.metrics if m not in ALL_METRICS]
        if unknown or not self.metrics:
            raise CondsynthError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                                 f"choose from {','.join(ALL_METRICS)}")
        if "miou" in self.metrics and not self.segmenter:
            raise CondsynthError("miou needs a segmenter. Fix: pass --segmenter SEG_DIR (train "
                                 "one with `condsynth segmenter train --data DIR --out SEG_DIR`),"
                                 " a TorchScript/ONNX file or a registered model name.")
        if self.batch_size < 1:
            raise CondsynthError(f"--batch-size must be at least 1, found {self.batch_size}")


# ----------------------------------------------------------------------------- image folders


def list_images(folder: str | Path) -> list[Path]:
    """The images directly in ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of images")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith(".") and p.is_file())
    if not found:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def read_uint8(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB."""
    return torch.from_numpy(read_image(path)).permute(2, 0, 1).contiguous()


def image_batches(paths: Sequence[Path], batch_size: int) -> Iterator[torch.Tensor]:
    """(B, 3, H, W) uint8 batches in order; a batch ends early where the image size changes."""
    batch: list[torch.Tensor] = []
    for path in paths:
        image = read_uint8(path)
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield torch.stack(batch)
            batch = []
        batch.append(image)
    if batch:
        yield torch.stack(batch)


# ----------------------------------------------------------------------------- feature cache


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "condsynth")


def _file_record(path: Path) -> list:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


@dataclass(frozen=True)
class InceptionOutputs:
    pool: np.ndarray      # (N, 2048) float32 (a classifier's: (N, F))
    logits: np.ndarray    # (N, 1008) float32 (a classifier's: (N, K))


def inception_outputs(paths: Sequence[Path], weights: InceptionWeights | ImageClassifier,
                      device: torch.device, batch_size: int, cache_dir: Path | None,
                      desc: str = "inception", progress: bool = True) -> InceptionOutputs:
    """Pool3 features and logits of ``paths`` (images of one folder), through the chunked cache
    in ``cache_dir / <folder hash>-<weights hash>/`` when ``cache_dir`` is given. With a
    classifier in place of the Inception weights: its features and logits."""
    if not paths:
        raise DataError("no images to score")
    folder = paths[0].parent.resolve()
    store = None
    if isinstance(weights, InceptionWeights):
        described = f"{weights.path}\n{weights.sha256}"
    else:
        described = weights.name
    if cache_dir is not None:
        key = hashlib.sha1(str(folder).encode()).hexdigest()[:16]
        store = Path(cache_dir) / "features" / f"{key}-{weights.tag}"
        store.mkdir(parents=True, exist_ok=True)
        (store / "source.txt").write_text(f"{folder}\n{described}\n")
    chunks = [list(paths[i:i + CHUNK_IMAGES]) for i in range(0, len(paths), CHUNK_IMAGES)]
    pools, logits = [], []
    network = None
    bar = tqdm(total=len(paths), desc=desc, unit="image", disable=not progress)
    for index, chunk in enumerate(chunks):
        records = [_file_record(p) for p in chunk]
        cached = _read_chunk(store / f"chunk-{index:05d}.npz", records) if store else None
        if cached is None:
            if network is None:
                network = (load_inception(weights, device)
                           if isinstance(weights, InceptionWeights) else weights)
            parts = []
            for batch in image_batches(chunk, batch_size):
                parts.append(network(batch.to(device)))
                bar.update(batch.shape[0])
            cached = (torch.cat([p for p, _ in parts]).cpu().numpy().astype(np.float32),
                      torch.cat([q for _, q in parts]).cpu().numpy().astype(np.float32))
            if store:
                _write_chunk(store / f"chunk-{index:05d}.npz", records, *cached)
        else:
            bar.update(len(chunk))
        pools.append(cached[0])
        logits.append(cached[1])
    bar.close()
    return InceptionOutputs(np.concatenate(pools), np.concatenate(logits))


def _read_chunk(path: Path, records: list) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            if json.loads(str(data["files"])) != records:
                return None
            return data["pool"], data["logits"]
    except (OSError, ValueError, KeyError):
        return None       # a damaged chunk is recomputed


def _write_chunk(path: Path, records: list, pool: np.ndarray, logits: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, pool=pool, logits=logits, files=np.array(json.dumps(records)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- metric groups


def inception_metrics(real: list[Path], fake: list[Path], options: EvalOptions,
                      device: torch.device, results: dict[str, Any]) -> None:
    """FID, KID and Inception Scores into ``results["metrics"]``; the network that produced
    them into ``results["feature_network"]`` (and the Inception weights into
    ``results["inception"]``)."""
    wanted = [m for m in options.metrics if m in INCEPTION_METRICS]
    if not wanted:
        return
    network: InceptionWeights | ImageClassifier
    if options.classifier:
        network = load_feature_classifier(options.classifier, device)
        results["feature_network"] = network.describe()
        results["warnings"].append(DOMAIN_CLASSIFIER_NOTE)
        desc = "classifier"
    else:
        network = resolve_inception_weights(options.inception_weights,
                                            options.allow_nonstandard_weights)
        results["inception"] = {"path": str(network.path), "sha256": network.sha256,
                                "standard": network.standard,
                                "comparable_with_papers": network.standard}
        kind = "standard" if network.standard else "NON-STANDARD weights"
        results["feature_network"] = {
            "kind": "inception_v3", "path": str(network.path), "sha256": network.sha256,
            "summary": f"Inception v3 (the FID graph of 2015-12-05, {kind}, SHA-256 "
                       f"{network.sha256[:12]}…)"}
        if not network.standard:
            results["warnings"].append(NONSTANDARD_NOTE)
        desc = "inception"
    cache = None
    if options.use_cache:
        cache = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
    real_out = inception_outputs(real, network, device, options.batch_size, cache,
                                 f"{desc} (real)", options.progress)
    fake_out = inception_outputs(fake, network, device, options.batch_size, cache,
                                 f"{desc} (generated)", options.progress)
    metrics = results["metrics"]
    if "fid" in wanted:
        metrics["fid"] = fid_from_features(real_out.pool, fake_out.pool)
    if "kid" in wanted:
        mean, std = kernel_inception_distance(real_out.pool, fake_out.pool, options.kid_subsets,
                                              options.kid_subset_size, options.seed)
        metrics["kid"] = {"mean": mean, "std": std, "subsets": options.kid_subsets,
                          "subset_size": min(options.kid_subset_size, len(real), len(fake))}
    if "is" in wanted:
        fake_is, real_is = (inception_score(o.logits, options.is_splits)
                            for o in (fake_out, real_out))
        metrics["is"] = {"fake": {"mean": fake_is[0], "std": fake_is[1]},
                         "real": {"mean": real_is[0], "std": real_is[1]},
                         "splits": min(options.is_splits, len(fake))}
    few = min(len(real), len(fake))
    if few < 2048 and "fid" in wanted:
        results["warnings"].append(
            f"FID from {few} images per set is biased upwards and noisy; papers use thousands "
            "(the whole validation set) and FID is only comparable at equal image counts.")


def swd_metric(real: list[Path], fake: list[Path], options: EvalOptions,
               results: dict[str, Any]) -> None:
    """SWD between the first min(len(real), len(fake)) images of each folder."""
    count = min(len(real), len(fake))
    if count != max(len(real), len(fake)):
        results["warnings"].append(f"SWD used the first {count} images of each set (it "
                                   "compares equally many).")
    sets = []
    for paths, name in ((real[:count], "real"), (fake[:count], "generated")):
        descriptors = None
        for batch in tqdm(image_batches(paths, options.batch_size), desc=f"swd ({name})",
                          unit="batch", disable=not options.progress):
            if descriptors is None:
                descriptors = DescriptorSet(tuple(batch.shape[-2:]), options.seed)
            elif tuple(batch.shape[-2:]) != descriptors.size:
                (h, w), (first_h, first_w) = batch.shape[-2:], descriptors.size
                raise CondsynthError(
                    f"SWD needs every image at one size (its Laplacian pyramids are compared "
                    f"level by level): the {name} images include {w}x{h} and "
                    f"{first_w}x{first_h}. The other metrics do not need this. Fix: resize "
                    "the images to one size (or evaluate at a fixed data.preprocess), or "
                    "leave swd out of --metrics.")
            descriptors.add(batch)
        sets.append(descriptors)
    result = swd_between(sets[0], sets[1], options.seed)
    results["metrics"]["swd"] = {**result.to_dict(), "images": count}


def segmentation_metric(pairs: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
                        segmenter: Segmenter, num_classes: int, ignore_index: int,
                        class_names: list[str], results: dict[str, Any],
                        progress: bool = True, total: int | None = None) -> None:
    """mIoU and pixel accuracy of the segmenter on generated images (and on the real ones,
    the upper bound) against the input label maps. ``pairs`` yields ``(labels (B, H, W),
    fake (B, 3, H, W) uint8, real (B, 3, H, W) uint8 or None)``."""
    if segmenter.num_classes is not None and segmenter.num_classes != num_classes:
        raise CondsynthError(f"segmenter {segmenter.name} predicts {segmenter.num_classes} "
                             f"classes but the labels have {num_classes}. Fix: use a segmenter "
                             "trained on this dataset's classes.")
    matrices = {"generated": np.zeros((num_classes, num_classes), np.int64)}
    for labels, fake, real in tqdm(pairs, desc="segmentation", unit="batch", total=total,
                                   disable=not progress):
        for name, images in (("generated", fake), ("real", real)):
            if images is None:
                continue
            pred = segmenter(images.float().div(127.5).sub(1.0))
            matrix = confusion_matrix(pred, labels, num_classes, ignore_index)
            matrices.setdefault(name, np.zeros_like(matrix))
            matrices[name] += matrix
    entry: dict[str, Any] = {"segmenter": segmenter.name, "class_names": class_names}
    for name, matrix in matrices.items():
        entry[name] = segmentation_scores(matrix).to_dict()
    if segmenter.info.get("eval"):
        entry["segmenter_training_eval"] = segmenter.info["eval"]
    results["metrics"]["miou"] = entry


# ----------------------------------------------------------------------------- folder mode


def new_results(mode: str) -> dict[str, Any]:
    from condsynth import __version__

    return {"condsynth_version": __version__, "mode": mode,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "metrics": {}, "errors": {},
            "warnings": [], "samples": []}


def guarded(results: dict[str, Any], names: Sequence[str], compute: Callable[[], Any]) -> None:
    """Run one metric's ``compute``: when it fails, its error goes into ``results["errors"]``
    under each of ``names`` (the metrics it computes) and the other metrics still run, so one
    metric that cannot be computed (SWD on images of several sizes) costs only itself."""
    try:
        compute()
    except CondsynthError as err:
        message = str(err)
    except Exception as err:  # noqa: BLE001 - recorded and reported; the others go on
        message = f"{type(err).__name__}: {err}"
    else:
        return
    for name in names:
        results["errors"][name] = message


def pair_by_stem(real: list[Path], fake: list[Path]) -> list[tuple[Path, Path]]:
    """Real and generated images paired by file stem, else by sorted order."""
    real_stems = {p.stem: p for p in real}
    if all(p.stem in real_stems for p in fake):
        return [(real_stems[p.stem], p) for p in fake]
    return list(zip(real, fake, strict=False))


def evaluate_folders(real_dir: str | Path, fake_dir: str | Path, out_dir: str | Path,
                     options: EvalOptions, labels_dir: str | Path | None = None,
                     num_classes: int | None = None, ignore_index: int = 255,
                     ) -> dict[str, Any]:
    """Score generated images in ``fake_dir`` against real ones in ``real_dir``; with
    ``labels_dir`` (label maps paired with the generated images by stem) and a segmenter,
    also mIoU. Writes ``eval.json`` and ``eval.html`` into ``out_dir``; returns the results."""
    from condsynth.metrics.report import write_report
    from condsynth.runtime import resolve_device

    options.check()
    if "accuracy" in options.metrics:
        raise CondsynthError("accuracy scores a run's classifier on a dataset, not two image "
                             "folders. Fix: condsynth evaluate RUN --data DIR --metrics accuracy")
    began = time.perf_counter()
    device = resolve_device(options.device)
    real, fake = list_images(real_dir), list_images(fake_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = new_results("folders")
    results.update(real=str(Path(real_dir).resolve()), fake=str(Path(fake_dir).resolve()),
                   images={"real": len(real), "fake": len(fake)})
    guarded(results, [m for m in options.metrics if m in INCEPTION_METRICS],
            lambda: inception_metrics(real, fake, options, device, results))
    if "swd" in options.metrics:
        guarded(results, ["swd"], lambda: swd_metric(real, fake, options, results))
    if "msssim" in options.metrics:
        results["errors"]["msssim"] = (
            "msssim needs several outputs per label map: it is computed by `condsynth "
            "evaluate RUN_DIR --data DIR`, not on two folders")

    def miou() -> None:
        if not labels_dir:
            raise CondsynthError("miou on two folders needs the label maps of the generated "
                                 "images: pass --labels DIR (paired by file name)")
        segmenter = load_segmenter(options.segmenter, device, options.segmenter_input)
        classes = num_classes or segmenter.num_classes
        if not classes:
            raise CondsynthError("the number of classes is unknown for this segmenter. Fix: "
                                 "pass --num-classes N")
        segmentation_metric(_folder_label_batches(fake, Path(labels_dir), options.batch_size),
                            segmenter, classes, ignore_index,
                            list(segmenter.info.get("class_names", [])), results,
                            options.progress)

    if "miou" in options.metrics:
        guarded(results, ["miou"], miou)
    for real_path, fake_path in pair_by_stem(real, fake)[: options.grid]:
        results["samples"].append({"real": os.path.relpath(real_path, out_dir),
                                   "fake": os.path.relpath(fake_path, out_dir)})
    results["seconds"] = round(time.perf_counter() - began, 1)
    write_report(out_dir, results)
    return results


def _folder_label_batches(fake: list[Path], labels_dir: Path, batch_size: int,
                          ) -> Iterator[tuple[torch.Tensor, torch.Tensor, None]]:
    """(labels, generated images, None) batches; each label map is resized (nearest) to its
    image, and a batch ends early where the image size changes."""
    from condsynth.data.io import read_label
    from condsynth.synthesize import resize_map

    labels = {p.stem: p for p in labels_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    maps: list[torch.Tensor] = []
    images: list[torch.Tensor] = []
    for path in fake:
        if path.stem not in labels:
            raise DataError(f"{path}: no label map named {path.stem}.* in {labels_dir}")
        image = read_uint8(path)
        label = torch.from_numpy(resize_map(read_label(labels[path.stem]), *image.shape[-2:]))
        if images and (len(images) == batch_size or image.shape != images[0].shape):
            yield torch.stack(maps), torch.stack(images), None
            maps, images = [], []
        maps.append(label)
        images.append(image)
    if images:
        yield torch.stack(maps), torch.stack(images), None


# ----------------------------------------------------------------------------- run mode


def run_fingerprint(run_dir: Path, extra: dict[str, Any]) -> str:
    """Changes when the run's weights or config, or the synthesis settings, change."""
    records = [_file_record(p) for p in sorted(run_dir.iterdir())
               if p.suffix in (".safetensors", ".yaml", ".npz", ".json") and p.is_file()
               and p.name != "eval.json"]
    return hashlib.sha256(json.dumps([records, extra], sort_keys=True).encode()).hexdigest()


@dataclass
class Synthesized:
    """What :func:`synthesize_split` wrote: ``out_dir/{fake,real,labels}/<stem>.png``."""

    dataset: Any
    phase: str
    stems: list[str]
    out_dir: Path

    def paths(self, kind: str) -> list[Path]:
        return [self.out_dir / kind / f"{s}.png" for s in self.stems]


def synthesize_split(method: Any, run_dir: str | Path, data_dir: str | Path,
                     out_dir: str | Path, phase: str | None = None, seed: int = 0,
                     batch_size: int = 8, max_images: int | None = None,
                     progress: bool = True) -> Synthesized:
    """Generate a picture for every item of a dataset split, batched, into ``out_dir/fake``,
    with the (resized, cropped) real images in ``out_dir/real`` and the input pictures in
    ``out_dir/labels``. Skipped when an earlier call with the same run, data and settings
    finished (``out_dir/synthesis.json``)."""
    from condsynth.data.dataset import tensor_to_image
    from condsynth.data.layouts import available_phases
    from condsynth.pages import condition_picture, save_png

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = method.config
    data_config = _eval_data_config(config, data_dir, max_images)
    phases = available_phases(data_dir, data_config.layout)
    phase = phase or next((p for p in ("test", "val") if p in phases), None)
    if phase is None or phase not in phases:
        raise DataError(f"{data_dir} has no {phase or 'test or val'} split (it has "
                        f"{', '.join(phases)}). Fix: pass --phase with one of those.")
    dataset = _eval_dataset(data_config, config, phase, method.size_multiple(), seed)
    if getattr(dataset, "layout", None) == "sketch":
        raise DataError(f"{data_dir}: the sketch layout holds no conditions to synthesize from")
    if len(dataset) == 0:
        raise DataError(f"{data_dir}: the {phase} split is empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "synthesis.json"
    fingerprint = run_fingerprint(run_dir, {"data": str(Path(data_dir).resolve()),
                                            "phase": phase, "max": max_images, "seed": seed,
                                            "data_config": data_config.__dict__})
    stems = dataset_stems(dataset)
    if len(set(stems)) != len(stems):
        stems = [f"{i:06d}_{s}" for i, s in enumerate(stems)]
    done = (manifest_path.is_file()
            and json.loads(manifest_path.read_text()).get("fingerprint") == fingerprint
            and all((out_dir / "fake" / f"{s}.png").is_file() for s in stems))
    if not done:
        manifest_path.unlink(missing_ok=True)
        index = 0
        for batch in tqdm(_item_batches(dataset, batch_size), desc="synthesize", unit="batch",
                          disable=not progress, total=-(-len(dataset) // batch_size)):
            torch.manual_seed(seed + index)      # multimodal methods draw their z from here
            fake = _generate(method, batch, method.device)
            for i in range(fake.shape[0]):
                stem = stems[index + i]
                item = {k: (v[i] if isinstance(v, torch.Tensor | list) else v)
                        for k, v in batch.items()}
                save_png(tensor_to_image(fake[i]), out_dir / "fake" / f"{stem}.png")
                save_png(tensor_to_image(batch["image"][i]), out_dir / "real" / f"{stem}.png")
                if config.condition.kind in SPATIAL_KINDS:
                    save_png(condition_picture(item, config.condition),
                             out_dir / "labels" / f"{stem}.png")
            index += fake.shape[0]
        manifest_path.write_text(json.dumps({"fingerprint": fingerprint, "count": index}))
    return Synthesized(dataset, phase, stems, out_dir)


def evaluate_run(run_dir: str | Path, data_dir: str | Path, options: EvalOptions,
                 out_dir: str | Path | None = None, phase: str | None = None,
                 max_images: int | None = None, msssim_samples: int = 4,
                 msssim_labels: int = 50) -> dict[str, Any]:
    """Synthesize the test split of ``data_dir`` with the run in ``run_dir`` and score it.

    Args:
        run_dir: a run directory (``condsynth.api.load``).
        data_dir: the dataset folder; its ``phase`` split is used (default: test, else val).
        options: metrics and settings.
        out_dir: where pictures and the report go (default ``run_dir/eval``).
        max_images: use only the first N items of the split.
        msssim_samples: outputs per label map for the MS-SSIM diversity score.
        msssim_labels: label maps the diversity score uses (the first N).
    Returns:
        The results, as written to ``eval.json``.
    """
    from condsynth.api import load
    from condsynth.metrics.report import write_report
    from condsynth.runtime import resolve_device

    options.check()
    began = time.perf_counter()
    run_dir = Path(run_dir)
    device = resolve_device(options.device)
    method = load(run_dir, device=str(device))
    config = method.config
    out_dir = Path(out_dir) if out_dir else run_dir / "eval"
    if "accuracy" in options.metrics:
        # A classifier's test accuracy reads the real images alone: no synthesis for it.
        results = _accuracy_results(method, run_dir, data_dir, options, phase, max_images)
        if set(options.metrics) == {"accuracy"}:
            results["seconds"] = round(time.perf_counter() - began, 1)
            write_report(out_dir, results)
            return results
    made = synthesize_split(method, run_dir, data_dir, out_dir, phase, options.seed,
                            options.batch_size, max_images, options.progress)
    if "accuracy" not in options.metrics:
        results = new_results("run")
    results.update(run=str(run_dir.resolve()), method=config.method,
                   data=str(Path(data_dir).resolve()), phase=made.phase)
    real, fake = made.paths("real"), made.paths("fake")
    results["images"] = {"real": len(real), "fake": len(fake)}
    guarded(results, [m for m in options.metrics if m in INCEPTION_METRICS],
            lambda: inception_metrics(real, fake, options, device, results))
    if "swd" in options.metrics:
        guarded(results, ["swd"], lambda: swd_metric(real, fake, options, results))

    def miou() -> None:
        if config.condition.kind != "label_map":
            raise CondsynthError(f"miou needs label maps; this run is conditioned on a "
                                 f"{config.condition.kind}")
        segmenter = load_segmenter(options.segmenter, device, options.segmenter_input)
        segmentation_metric(
            _run_label_batches(made.dataset, fake, options.batch_size), segmenter,
            config.condition.num_classes, config.condition.dontcare_label,
            list(config.condition.class_names), results, options.progress,
            total=-(-len(made.dataset) // options.batch_size))

    def msssim() -> None:
        results["metrics"]["msssim"] = _diversity(method, made.dataset, device, options,
                                                  msssim_samples, msssim_labels)

    if "miou" in options.metrics:
        guarded(results, ["miou"], miou)
    if "msssim" in options.metrics:
        guarded(results, ["msssim"], msssim)
    spatial = config.condition.kind in SPATIAL_KINDS
    for stem in made.stems[: options.grid]:
        row = {"label": f"labels/{stem}.png"} if spatial else {}
        results["samples"].append({**row, "real": f"real/{stem}.png",
                                   "fake": f"fake/{stem}.png", "name": stem})
    results["seconds"] = round(time.perf_counter() - began, 1)
    write_report(out_dir, results)
    return results


def _accuracy_results(method: Any, run_dir: Path, data_dir: str | Path, options: EvalOptions,
                      phase: str | None, max_images: int | None) -> dict[str, Any]:
    """New results holding the ``accuracy`` of the run's classifier on the labelled images
    of the split (test, else val)."""
    from condsynth.metrics.accuracy import classification_accuracy

    config = method.config
    results = new_results("run")
    results.update(run=str(run_dir.resolve()), method=config.method,
                   data=str(Path(data_dir).resolve()))
    data = dataclasses.replace(_eval_data_config(config, data_dir, max_images),
                               labeled_per_class=None, labeled_batch=False)

    def accuracy() -> None:
        chosen = phase or "test"
        try:
            dataset = _eval_dataset(data, config, chosen, method.size_multiple(), options.seed)
        except CondsynthError:
            if phase is not None:
                raise
            chosen = "val"
            dataset = _eval_dataset(data, config, chosen, method.size_multiple(), options.seed)
        results["phase"] = chosen
        results["metrics"]["accuracy"] = {
            **classification_accuracy(method, dataset, max(options.batch_size, 100),
                                      options.progress), "phase": chosen}

    guarded(results, ["accuracy"], accuracy)
    return results


def _eval_data_config(config: Any, data_dir: str | Path, max_images: int | None) -> Any:
    import dataclasses

    return dataclasses.replace(config.data, root=str(data_dir), max_items=max_images,
                               flip=False, num_workers=0)


def _eval_dataset(data_config: Any, config: Any, phase: str, size_multiple: int,
                  seed: int) -> Any:
    import dataclasses

    from condsynth.data.factory import open_dataset

    config = dataclasses.replace(config, data=data_config,
                                 train=dataclasses.replace(config.train, seed=seed))
    return open_dataset(config, phase, train=False, size_multiple=size_multiple)


def _item_batches(dataset: Any, batch_size: int) -> Iterator[dict[str, Any]]:
    """Dataset items stacked into batches; a batch ends early where the size changes."""
    items: list[dict[str, Any]] = []

    def stack() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in items[0]:
            values = [it[key] for it in items]
            out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
        return out

    for index in range(len(dataset)):
        item = dataset[index]
        if items and (len(items) == batch_size
                      or item["image"].shape != items[0]["image"].shape):
            yield stack()
            items = []
        items.append(item)
    if items:
        yield stack()


def dataset_stems(dataset: Any) -> list[str]:
    """A file stem per item: the label map's (or image's) of pairs; of single images, the
    file's, or the index for items of one array file (IDX: ``file#index``)."""
    if hasattr(dataset, "samples"):
        return [Path(s.label or s.image).stem for s in dataset.samples]
    return [f"{int(p.rsplit('#', 1)[1]):06d}" if "#" in p else Path(p).stem
            for p in dataset.source.paths]


def _generate(method: Any, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
    condition = condition_of(batch, method.config.condition)
    instance = batch.get("instance")
    # Noise-driven models draw one picture per real image (of its class, for class models).
    return method.generate(None if condition is None else condition.to(device),
                           batch_size=batch["image"].shape[0],
                           instance=instance.to(device) if instance is not None else None)


def _run_label_batches(dataset: Any, fake: list[Path], batch_size: int,
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    index = 0
    for batch in _item_batches(dataset, batch_size):
        count = batch["label"].shape[0]
        fake_batch = torch.stack([read_uint8(p) for p in fake[index:index + count]])
        real_batch = batch["image"].add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        index += count
        yield batch["label"], fake_batch, real_batch


def _diversity(method: Any, dataset: Any, device: torch.device, options: EvalOptions,
               samples: int, labels: int) -> dict[str, Any]:
    """Mean pairwise MS-SSIM of ``samples`` outputs per label map over the first ``labels``."""
    if samples < 2:
        raise CondsynthError("--msssim-samples must be at least 2")
    values = []
    count = min(labels, len(dataset))
    for index in tqdm(range(count), desc="ms-ssim", unit="label", disable=not options.progress):
        item = dataset[index]
        batch = {k: (v[None] if isinstance(v, torch.Tensor) else [v]) for k, v in item.items()}
        outputs = []
        for k in range(samples):
            torch.manual_seed(options.seed * 1_000_003 + index * 1009 + k)
            outputs.append(_generate(method, batch, device)[0].float().cpu().clamp(-1, 1))
        values.append(mean_pairwise_ms_ssim(torch.stack(outputs)))
    height, width = outputs[0].shape[-2:]
    return {"mean": float(np.mean(values)), "labels": count, "samples_per_label": samples,
            "scales": usable_scales(height, width)}
