"""Segmentation consistency: how well a semantic segmenter recovers the input layout from a
generated image, scored as mean intersection-over-union and pixel accuracy (the measure of
pix2pix, pix2pixHD and SPADE: Isola et al. 2017, Wang et al. 2018, Park et al. 2019).

The segmenter is pluggable (:func:`load_segmenter`): a TorchScript, ``torch.export`` or ONNX
file, a PyTorch model registered with :func:`register_segmenter`, or condsynth's own small
segmenter (:class:`SegmenterUNet`) trained on a dataset's real images by
:func:`train_segmenter`, so that datasets without a public segmenter can be scored too.
Running the same segmenter on the real images gives the upper bound to report beside the score
of the generated ones.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.errors import CheckpointError, CondsynthError, DataError

InputRange = Literal["minus1_1", "0_1", "imagenet"]
SEGMENTER_FORMAT = "condsynth-segmenter"
SEGMENTER_FORMAT_VERSION = 1
SEGMENTER_CONFIG = "segmenter.json"
SEGMENTER_WEIGHTS = "segmenter.safetensors"
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------ scores


def confusion_matrix(pred: Tensor | np.ndarray, target: Tensor | np.ndarray, num_classes: int,
                     ignore_index: int | None = 255) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class.

    Pixels whose target is ``ignore_index`` (dont-care) or outside 0..K-1 are not counted.
    Predictions outside 0..K-1 are an error (the segmenter and the dataset disagree on K).
    """
    pred = torch.as_tensor(pred).reshape(-1).long().cpu()
    target = torch.as_tensor(target).reshape(-1).long().cpu()
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target differ in size: {pred.numel()} vs "
                         f"{target.numel()} pixels")
    keep = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        keep &= target != ignore_index
    pred, target = pred[keep], target[keep]
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise DataError(f"the segmenter predicted class {int(pred.max())} but the dataset has "
                        f"{num_classes} classes. Fix: use a segmenter trained on these classes.")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes ** 2)
    return counts.view(num_classes, num_classes).numpy().astype(np.int64)


@dataclass(frozen=True)
class SegmentationScores:
    """mIoU (mean over classes that occur in the target or the prediction), pixel accuracy and
    the per-class IoU (None for classes that occur in neither)."""

    miou: float
    pixel_accuracy: float
    per_class_iou: list[float | None]
    pixels: int

    def to_dict(self) -> dict[str, Any]:
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy,
                "per_class_iou": self.per_class_iou, "pixels": self.pixels}


def segmentation_scores(matrix: np.ndarray) -> SegmentationScores:
    """Scores from a confusion matrix (see :func:`confusion_matrix`)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positive = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    total = matrix.sum()
    if total == 0:
        raise CondsynthError("no labelled pixels to score (every pixel is dont-care)")
    return SegmentationScores(
        miou=float(np.nanmean(iou)), pixel_accuracy=float(true_positive.sum() / total),
        per_class_iou=[None if np.isnan(v) else float(v) for v in iou], pixels=int(total))


# --------------------------------------------------------------------------------- segmenters


class Segmenter:
    """A segmentation network behind one interface: (B, 3, H, W) images in [-1, 1] in,
    (B, H, W) int64 class ids out (at the input size).

    Args:
        run: the network call on prepared input; returns (B, K, h, w) scores, (B, h, w) ids, or
            a dict with ``"out"`` / a tuple whose first item is one of those.
        input_range: what the network expects: ``minus1_1``, ``0_1`` or ``imagenet``
            (0..1 then ImageNet mean/std).
        num_classes: classes it predicts, when known.
        name: how reports name it.
    """

    def __init__(self, run: Callable[[Tensor], Any], input_range: InputRange = "minus1_1",
                 num_classes: int | None = None, name: str = "segmenter",
                 device: torch.device | str = "cpu", info: dict[str, Any] | None = None) -> None:
        if input_range not in ("minus1_1", "0_1", "imagenet"):
            raise CondsynthError(f"unknown segmenter input range {input_range!r}; expected "
                                 "minus1_1, 0_1 or imagenet")
        self.run = run
        self.input_range = input_range
        self.num_classes = num_classes
        self.name = name
        self.device = torch.device(device)
        self.info = info or {}

    def prepare(self, images: Tensor) -> Tensor:
        x = images.float().to(self.device)
        if self.input_range == "minus1_1":
            return x
        x = (x + 1.0) / 2.0
        if self.input_range == "imagenet":
            mean = torch.tensor(_IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(_IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        out = self.run(self.prepare(images))
        if isinstance(out, dict):
            out = out["out"]
        elif isinstance(out, list | tuple):
            out = out[0]
        out = torch.as_tensor(out)
        if out.dim() == 4:                                 # (B, K, h, w) scores
            if out.shape[-2:] != (height, width):
                out = F.interpolate(out.float(), size=(height, width), mode="bilinear",
                                    align_corners=False)
            return out.argmax(dim=1).long()
        if out.dim() == 3:                                 # (B, h, w) ids
            if out.shape[-2:] != (height, width):
                out = F.interpolate(out[:, None].float(), size=(height, width),
                                    mode="nearest")[:, 0]
            return out.long()
        raise CondsynthError(f"segmenter {self.name} returned shape {tuple(out.shape)}; expected "
                             "(B, K, H, W) class scores or (B, H, W) class ids")


SegmenterFactory = Callable[[str | None, torch.device], nn.Module]


@dataclass(frozen=True)
class _Registered:
    factory: SegmenterFactory
    input_range: InputRange
    num_classes: int | None


SEGMENTERS: dict[str, _Registered] = {}


def register_segmenter(name: str, input_range: InputRange = "minus1_1",
                       num_classes: int | None = None):
    """Register a PyTorch segmenter factory ``(weights_path or None, device) -> nn.Module``;
    ``--segmenter NAME`` or ``--segmenter NAME:WEIGHTS`` then selects it."""

    def wrap(factory: SegmenterFactory) -> SegmenterFactory:
        SEGMENTERS[name] = _Registered(factory, input_range, num_classes)
        return factory

    return wrap


def load_segmenter(spec: str | Path, device: torch.device | str = "cpu",
                   input_range: InputRange | None = None) -> Segmenter:
    """A segmenter from ``spec``: a folder written by ``condsynth segmenter train``, a
    TorchScript file, a ``torch.export`` archive (``.pt2``), an ``.onnx`` file (needs
    onnxruntime), or ``NAME[:WEIGHTS]`` of a registered model. ``input_range`` overrides the
    default (``minus1_1`` for files)."""
    device = torch.device(device)
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_own_segmenter(path, device)
    if path.is_file() and path.suffix.lower() == ".onnx":
        return _onnx_segmenter(path, device, input_range or "minus1_1")
    if path.is_file() and path.suffix.lower() == ".pt2":
        try:
            module = torch.export.load(str(path)).module().to(device)
        except Exception as err:  # noqa: BLE001 - any unreadable archive gets one message
            raise CheckpointError(f"{path} is not a torch.export archive "
                                  f"({str(err).splitlines()[0]})") from None
        return Segmenter(module, input_range or "minus1_1", None, path.name, device)
    if path.is_file():
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated in favour of torch.export, but it is the format most
                # published segmenters ship in; the user need not hear about it on every run.
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as err:  # noqa: BLE001 - any non-TorchScript file gets one message
            raise CheckpointError(
                f"{path} is not a TorchScript file ({str(err).splitlines()[0]}). Fix: export the "
                "model with torch.jit.script / torch.jit.trace and .save(), give an .onnx file, "
                "or register the model (condsynth.metrics.segmentation.register_segmenter) and "
                "pass NAME:WEIGHTS.") from None
        return Segmenter(module, input_range or "minus1_1", None, path.name, device)
    name, _, weights = text.partition(":")
    if name in SEGMENTERS:
        entry = SEGMENTERS[name]
        module = entry.factory(weights or None, device).to(device).eval()
        return Segmenter(module, input_range or entry.input_range, entry.num_classes, name,
                         device)
    known = ", ".join(sorted(SEGMENTERS)) or "none registered"
    raise CondsynthError(
        f"segmenter '{text}' is neither a folder, a file nor a registered model ({known}). Fix: "
        "train one with `condsynth segmenter train --data DIR --out SEG_DIR` and pass SEG_DIR, "
        "or give a TorchScript / ONNX file.")


def _onnx_segmenter(path: Path, device: torch.device, input_range: InputRange) -> Segmenter:
    try:
        import onnxruntime
    except ImportError:
        raise CondsynthError(f"{path} is an ONNX model but onnxruntime is not installed. Fix: "
                             "pip install onnxruntime (or export the model to TorchScript).",
                             ) from None
    providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda"
                 else ["CPUExecutionProvider"])
    session = onnxruntime.InferenceSession(str(path), providers=providers)
    input_name = session.get_inputs()[0].name

    def run(x: Tensor) -> Tensor:
        out = session.run(None, {input_name: x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(np.asarray(out))

    return Segmenter(run, input_range, None, path.name, device)


# ------------------------------------------------------------------------ condsynth's own net


class _ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SegmenterUNet(nn.Module):
    """A small U-Net (Ronneberger et al., 2015) segmenter for datasets without a public one.

    Args:
        num_classes: classes to predict.
        base_channels: channels of the first level, doubled per level.
        depth: down-sampling steps.
    Forward: (B, 3, H, W) images in [-1, 1] (any size) -> (B, num_classes, H, W) logits.
    """

    def __init__(self, num_classes: int, base_channels: int = 32, depth: int = 3) -> None:
        super().__init__()
        widths = [base_channels * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_ConvBlock(3, widths[0])] + [
            _ConvBlock(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList(_ConvBlock(widths[i + 1] + widths[i], widths[i])
                                for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2, ceil_mode=True))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            # Upsample to the skip's exact size, so that odd sizes work too.
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


def load_own_segmenter(folder: str | Path, device: torch.device | str = "cpu") -> Segmenter:
    """A segmenter folder written by :func:`train_segmenter`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path = folder / SEGMENTER_CONFIG
    if not config_path.is_file():
        raise CheckpointError(f"{folder} is not a condsynth segmenter folder: {SEGMENTER_CONFIG} "
                              "is missing. Fix: write one with `condsynth segmenter train`.")
    try:
        info = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err})") from None
    if info.get("format") != SEGMENTER_FORMAT or info.get(
            "format_version") != SEGMENTER_FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: not a condsynth segmenter of format version "
                              f"{SEGMENTER_FORMAT_VERSION}")
    net = SegmenterUNet(int(info["num_classes"]), int(info["base_channels"]), int(info["depth"]))
    try:
        net.load_state_dict(load_file(folder / SEGMENTER_WEIGHTS))
    except Exception as err:  # noqa: BLE001 - unreadable or mismatched weights: one message
        raise CheckpointError(f"{folder / SEGMENTER_WEIGHTS} could not be loaded "
                              f"({str(err).splitlines()[0]})") from None
    net = net.to(device).eval()
    return Segmenter(net, "minus1_1", int(info["num_classes"]), f"condsynth:{folder.name}",
                     device, info)


def score_dataset(segmenter: Segmenter, batches: Any, num_classes: int,
                  ignore_index: int | None) -> SegmentationScores:
    """Segment every ``(images, labels)`` batch and score the predictions."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for images, labels in batches:
        matrix += confusion_matrix(segmenter(images), labels, num_classes, ignore_index)
    return segmentation_scores(matrix)


def train_segmenter(data_root: str | Path, out_dir: str | Path, steps: int = 2000,
                    size: int = 128, batch_size: int = 8, lr: float = 1e-3,
                    base_channels: int = 32, depth: int = 3, layout: str = "auto",
                    device: str = "auto", seed: int = 0, progress: bool = True,
                    ) -> dict[str, Any]:
    """Train :class:`SegmenterUNet` on a dataset's real training images and label maps (resized
    and cropped to ``size``, flipped), with cross-entropy that ignores dont-care pixels; write
    ``segmenter.safetensors`` and ``segmenter.json`` to ``out_dir``; score it on the test (or
    val) split when there is one. Returns the summary written to ``segmenter.json``."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from condsynth.config import ConditionConfig, DataConfig
    from condsynth.data.dataset import PairedDataset
    from condsynth.data.layouts import (
        available_phases,
        detect_num_classes,
        read_classes,
        resolve_layout,
    )
    from condsynth.runtime import resolve_device

    torch.manual_seed(seed)
    target = resolve_device(device)
    layout = resolve_layout(data_root, layout)
    if layout in ("aligned", "sketch"):
        raise DataError(f"{data_root}: a segmenter learns from label maps, and the {layout} "
                        "layout has none.")
    label = ConditionConfig(num_classes=detect_num_classes(data_root, layout))
    classes = read_classes(data_root)
    if classes:
        label.class_names = classes[0]
    data = DataConfig(root=str(data_root), layout=layout, load_size=size, crop_size=size)
    train_set = PairedDataset(data, label, "train", train=True, seed=seed)
    if len(train_set) == 0:
        raise DataError(f"{data_root}: the training split is empty")
    net = SegmenterUNet(label.num_classes, base_channels, depth).to(target)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    began = time.perf_counter()
    step, epoch, loss_value = 0, 0, float("nan")
    bar = tqdm(total=steps, desc="segmenter", unit="step", disable=not progress)
    net.train()
    while step < steps:
        train_set.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True,
                                             generator=generator, drop_last=False)
        for batch in loader:
            logits = net(batch["image"].to(target))
            loss = F.cross_entropy(logits, batch["label"].to(target),
                                   ignore_index=label.dontcare_label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = float(loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if step >= steps:
                break
        epoch += 1
    bar.close()
    net.eval()
    info: dict[str, Any] = {
        "format": SEGMENTER_FORMAT, "format_version": SEGMENTER_FORMAT_VERSION,
        "num_classes": label.num_classes, "class_names": label.class_names,
        "dontcare_label": label.dontcare_label, "base_channels": base_channels, "depth": depth,
        "size": size, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "data": str(Path(data_root).resolve()), "layout": layout, "final_loss": loss_value,
        "seconds": round(time.perf_counter() - began, 1)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eval_phase = next((p for p in ("test", "val") if p in available_phases(data_root, layout)),
                      None)
    if eval_phase:
        test_set = PairedDataset(data, label, eval_phase, train=False, seed=seed)
        segmenter = Segmenter(net, "minus1_1", label.num_classes, "segmenter", target)
        loader = torch.utils.data.DataLoader(test_set, batch_size=batch_size)
        scores = score_dataset(segmenter, ((b["image"], b["label"]) for b in loader),
                               label.num_classes, label.dontcare_label)
        info["eval"] = {"phase": eval_phase, "images": len(test_set), **scores.to_dict()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    _atomic_write(out_dir / SEGMENTER_WEIGHTS, lambda p: save_file(tensors, str(p)))
    _atomic_write(out_dir / SEGMENTER_CONFIG,
                  lambda p: p.write_text(json.dumps(info, indent=2) + "\n"))
    return info


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
