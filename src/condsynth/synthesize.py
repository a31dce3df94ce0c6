"""Synthesis from files: one label map to one PNG, or a folder of label maps to a folder of
images with an ``index.html``. Used by ``condsynth synthesize``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from condsynth.data.dataset import image_to_tensor, tensor_to_image
from condsynth.data.io import load_palette, read_image, read_instance, read_label
from condsynth.data.labels import check_label_values
from condsynth.data.layouts import IMAGE_SUFFIXES
from condsynth.errors import DataError
from condsynth.methods.base import Method
from condsynth.pages import class_colours, colourize, save_png, write_table_page


def valid_size(size: int, multiple: int) -> int:
    """The nearest multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, int(round(size / multiple)) * multiple)


def resize_map(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an id map (labels and instances must not blend)."""
    if array.shape == (height, width):
        return array
    ys = (np.arange(height) * array.shape[0] / height).astype(np.int64)
    xs = (np.arange(width) * array.shape[1] / width).astype(np.int64)
    return array[ys][:, xs]


def synthesize_arrays(method: Method, label: np.ndarray, instance: np.ndarray | None = None,
                      style: np.ndarray | None = None, seed: int | None = None) -> np.ndarray:
    """(H, W) ids (+ instance ids, + (h, w, 3) style image) -> (H, W, 3) uint8 picture.

    Sizes the network cannot take are rounded to the nearest valid size for the network and
    the result is resized back, so any input size works.
    """
    height, width = label.shape
    multiple = method.size_multiple()
    h, w = valid_size(height, multiple), valid_size(width, multiple)
    device = method.device
    label_t = torch.from_numpy(resize_map(label, h, w)).long()[None].to(device)
    instance_t = None
    if instance is not None:
        instance_t = torch.from_numpy(resize_map(instance, h, w)).long()[None].to(device)
    style_t = None
    if style is not None:
        style_t = image_to_tensor(style)[None].to(device)
    if seed is not None:
        torch.manual_seed(seed)
    fake = method.generate(label_t, instance=instance_t, style=style_t)
    if (h, w) != (height, width):
        fake = F.interpolate(fake, size=(height, width), mode="bicubic", align_corners=False)
    return tensor_to_image(fake[0])


def load_inputs(method: Method, label_path: Path, instance_path: Path | None,
                palette_path: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    palette = load_palette(palette_path) if palette_path else None
    label = read_label(label_path, palette)
    spec = method.config.label
    names = ", ".join(f"{i} {n}" for i, n in enumerate(spec.class_names)) or "no names stored"
    check_label_values(torch.from_numpy(label)[None], spec, str(label_path),
                       fix=f"this model knows classes 0..{spec.num_classes - 1} ({names}) and "
                       f"{spec.dontcare_label} (dont-care); relabel the map with those ids")
    instance = None
    if method.config.label.use_instance:
        if instance_path is None:
            raise DataError(f"{label_path}: this model uses instance maps but none was given. "
                            "Fix: pass --instance I.png (or --instances DIR); for a label map "
                            "without instances, pass the label map itself as its instance map.")
        instance = read_instance(instance_path)
        if instance.shape != label.shape:
            raise DataError(f"{instance_path}: size {instance.shape[1]}x{instance.shape[0]} "
                            f"differs from the label map {label_path} "
                            f"({label.shape[1]}x{label.shape[0]}). Fix: give maps of one size.")
    return label, instance


def synthesize_file(method: Method, label_path: str | Path, out_path: str | Path,
                    instance_path: str | Path | None = None, style_path: str | Path | None = None,
                    palette: str | None = None, seed: int | None = None) -> Path:
    """Write the picture for one label map to ``out_path``."""
    label, instance = load_inputs(method, Path(label_path),
                                  Path(instance_path) if instance_path else None, palette)
    style = read_image(style_path) if style_path else None
    save_png(synthesize_arrays(method, label, instance, style, seed), out_path)
    return Path(out_path)


def synthesize_folder(method: Method, labels_dir: str | Path, out_dir: str | Path,
                      instances_dir: str | Path | None = None,
                      style_path: str | Path | None = None, palette: str | None = None,
                      seed: int | None = None, progress: bool = True) -> Path:
    """Every label map in ``labels_dir`` to ``out_dir/<stem>.png`` plus ``index.html``
    (label | generated); instance maps are paired by file stem. No real images are needed."""
    labels_dir, out_dir = Path(labels_dir), Path(out_dir)
    if not labels_dir.is_dir():
        raise DataError(f"{labels_dir} is not a folder of label maps")
    labels = sorted(p for p in labels_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not labels:
        raise DataError(f"{labels_dir} holds no label maps (PNG files)")
    instances = {}
    if instances_dir:
        instances = {p.stem: p for p in Path(instances_dir).iterdir()
                     if p.suffix.lower() in IMAGE_SUFFIXES}
    style = read_image(style_path) if style_path else None
    colours = class_colours(method.config.label)
    rows = []
    for path in tqdm(labels, desc="synthesize", unit="image", disable=not progress):
        instance_path = instances.get(path.stem)
        if method.config.label.use_instance and instance_path is None and instances_dir:
            raise DataError(f"{path}: no instance map named {path.stem}.* in {instances_dir}")
        label, instance = load_inputs(method, path, instance_path, palette)
        picture = synthesize_arrays(method, label, instance, style, seed)
        save_png(picture, out_dir / f"{path.stem}.png")
        save_png(colourize(label, colours), out_dir / "labels" / f"{path.stem}.png")
        rows.append([path.name, f"labels/{path.stem}.png", f"{path.stem}.png"])
    write_table_page(out_dir / "index.html", f"condsynth: {labels_dir.name}",
                     ["label map", "label", "generated"], rows,
                     [f"{len(rows)} label maps synthesized by {method.config.method}"])
    return out_dir

