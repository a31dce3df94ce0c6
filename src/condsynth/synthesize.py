"""Synthesis from files: one label map (or sketch) to one PNG, or a folder of label maps (or
sketches) to a folder of images with an ``index.html``. Used by ``condsynth synthesize``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from condsynth.conditions import describe_condition
from condsynth.data.dataset import image_to_tensor, tensor_to_image
from condsynth.data.io import load_palette, read_image, read_instance, read_label
from condsynth.data.labels import check_label_values
from condsynth.data.layouts import IMAGE_SUFFIXES
from condsynth.data.sketches import hint_picture, load_hints, load_sketch, sketch_to_tensor
from condsynth.deploy import resize_map, valid_size
from condsynth.errors import ConfigError, DataError
from condsynth.methods.base import Capability, Method
from condsynth.pages import class_colours, colourize, save_png, write_table_page


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
        if style_t.shape[2:] != (h, w):   # a style image of any size takes the layout's size
            style_t = F.interpolate(style_t, size=(h, w), mode="bicubic",
                                    align_corners=False).clamp(-1, 1)
    if seed is not None:
        torch.manual_seed(seed)
    fake = method.generate(label_t, instance=instance_t, style=style_t)
    if (h, w) != (height, width):
        fake = F.interpolate(fake, size=(height, width), mode="bicubic", align_corners=False)
    return tensor_to_image(fake[0])


def load_inputs(method: Method, label_path: Path, instance_path: Path | None,
                palette_path: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    spec = method.config.condition
    if Capability.PAINT not in method.capabilities():
        sketch = (" Fix: pass it with --sketch / --sketches."
                  if Capability.SKETCH in method.capabilities() else "")
        raise DataError(f"{label_path}: this run's {method.config.method} model is conditioned "
                        f"on a {describe_condition(spec)}, not on a label map." + sketch)
    palette = load_palette(palette_path) if palette_path else None
    label = read_label(label_path, palette)
    names = ", ".join(f"{i} {n}" for i, n in enumerate(spec.class_names)) or "no names stored"
    check_label_values(torch.from_numpy(label)[None], spec, str(label_path),
                       fix=f"this model knows classes 0..{spec.num_classes - 1} ({names}) and "
                       f"{spec.dontcare_label} (dont-care); relabel the map with those ids")
    instance = None
    if method.config.condition.use_instance:
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


def read_style(method: Method, style_path: str | Path | None) -> np.ndarray | None:
    """The ``--style-image`` as (H, W, 3) uint8, refused for a model without a style encoder
    (it would be ignored, and the user would think it had been used)."""
    if not style_path:
        return None
    if Capability.STYLE_IMAGE not in method.capabilities():
        raise ConfigError(f"--style-image {style_path}: this {method.config.method} run has no "
                          "style encoder, so a style image cannot steer it (SPADE runs trained "
                          "with model.use_vae=true and pix2pixHD runs with "
                          "model.instance_feat=true can). Fix: drop --style-image.")
    return read_image(style_path)


def synthesize_file(method: Method, label_path: str | Path, out_path: str | Path,
                    instance_path: str | Path | None = None, style_path: str | Path | None = None,
                    palette: str | None = None, seed: int | None = None) -> Path:
    """Write the picture for one label map to ``out_path``."""
    label, instance = load_inputs(method, Path(label_path),
                                  Path(instance_path) if instance_path else None, palette)
    style = read_style(method, style_path)
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
    style = read_style(method, style_path)
    colours = class_colours(method.config.condition)
    rows = []
    for path in tqdm(labels, desc="synthesize", unit="image", disable=not progress):
        instance_path = instances.get(path.stem)
        if method.config.condition.use_instance and instance_path is None and instances_dir:
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



# ----------------------------------------------------------------------------- sketches


def _require_sketch_model(method: Method, hints: bool) -> None:
    capabilities = method.capabilities()
    if Capability.SKETCH not in capabilities:
        takes, fix = (("label maps", "pass --label / --labels") if Capability.PAINT in capabilities
                      else (f"a {describe_condition(method.config.condition)}",
                            "give it the input it was trained on"))
        raise DataError(f"this run's {method.config.method} model takes {takes}, not sketches. "
                        f"Fix: {fix}, or use a run trained on sketches (for example --method "
                        "autopainter).")
    if hints and Capability.HINTS not in capabilities:
        raise DataError(f"this run's {method.config.method} model takes no colour hints. Fix: "
                        "leave out --hints / --hints-dir.")


def synthesize_sketch(method: Method, sketch: np.ndarray, hints: torch.Tensor | None = None,
                      seed: int | None = None,
                      attributes: torch.Tensor | None = None) -> np.ndarray:
    """(H, W) uint8 sketch (paper 255) + optional (4, H, W) hints → (H, W, 3) uint8 picture.

    Any size works: the sketch is resized to the nearest size the network takes (area
    averaging keeps thin lines when shrinking; hints with NEAREST) and the result back."""
    height, width = sketch.shape
    multiple = method.size_multiple()
    h, w = valid_size(height, multiple), valid_size(width, multiple)
    device = method.device
    sketch_t = sketch_to_tensor(sketch)[None].to(device)                   # (1, 1, H, W)
    if (h, w) != (height, width):
        mode = "area" if h * w < height * width else "bilinear"
        sketch_t = F.interpolate(sketch_t, size=(h, w), mode=mode)
    kwargs = {}
    if hints is not None:
        hints_t = hints[None].to(device)
        if (h, w) != (height, width):
            hints_t = F.interpolate(hints_t, size=(h, w), mode="nearest")
        kwargs["hints"] = hints_t
    if attributes is not None:                        # (1, A): beside the sketch
        kwargs["attributes"] = attributes.to(device)
    if seed is not None:
        torch.manual_seed(seed)
    fake = method.generate(sketch_t, **kwargs)
    if (h, w) != (height, width):
        fake = F.interpolate(fake, size=(height, width), mode="bicubic", align_corners=False)
    return tensor_to_image(fake[0])


def synthesize_sketch_file(method: Method, sketch_path: str | Path, out_path: str | Path,
                           hints_path: str | Path | None = None,
                           seed: int | None = None,
                           attributes: torch.Tensor | None = None) -> tuple[Path, list[str]]:
    """Colour one sketch file (cleaned as :func:`condsynth.data.sketches.load_sketch` says),
    with an optional hint image; returns the output path and notes about automatic fixes."""
    _require_sketch_model(method, hints_path is not None)
    sketch, notes = load_sketch(sketch_path)
    hints = None
    if hints_path is not None:
        hints, hint_notes = load_hints(hints_path, sketch.shape)
        notes += hint_notes
    save_png(synthesize_sketch(method, sketch, hints, seed, attributes), out_path)
    return Path(out_path), notes


def synthesize_sketch_folder(method: Method, sketches_dir: str | Path, out_dir: str | Path,
                             hints_dir: str | Path | None = None, seed: int | None = None,
                             progress: bool = True) -> tuple[Path, list[str]]:
    """Every sketch in ``sketches_dir`` to ``out_dir/<stem>.png`` plus ``index.html`` (sketch |
    hints | result); hint images in ``hints_dir`` pair with sketches by file stem, and a sketch
    without one is coloured without hints. Returns the folder and notes."""
    sketches_dir, out_dir = Path(sketches_dir), Path(out_dir)
    _require_sketch_model(method, hints_dir is not None)
    if not sketches_dir.is_dir():
        raise DataError(f"{sketches_dir} is not a folder of sketches")
    sketches = sorted(p for p in sketches_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not sketches:
        raise DataError(f"{sketches_dir} holds no sketches (PNG or JPEG files)")
    hint_files = {}
    if hints_dir is not None:
        if not Path(hints_dir).is_dir():
            raise DataError(f"{hints_dir} is not a folder of hint images")
        hint_files = {p.stem: p for p in Path(hints_dir).iterdir()
                      if p.suffix.lower() in IMAGE_SUFFIXES}
    rows, notes = [], []
    for path in tqdm(sketches, desc="synthesize", unit="sketch", disable=not progress):
        sketch, sketch_notes = load_sketch(path)
        notes += sketch_notes
        hints, hints_cell = None, "none"
        if path.stem in hint_files:
            hints, hint_notes = load_hints(hint_files[path.stem], sketch.shape)
            notes += hint_notes
            save_png(hint_picture(hints), out_dir / "hints" / f"{path.stem}.png")
            hints_cell = f"hints/{path.stem}.png"
        save_png(synthesize_sketch(method, sketch, hints, seed), out_dir / f"{path.stem}.png")
        save_png(np.repeat(sketch[..., None], 3, axis=2), out_dir / "sketches" / f"{path.stem}.png")
        rows.append([path.name, f"sketches/{path.stem}.png", hints_cell, f"{path.stem}.png"])
    with_hints = sum(row[2] != "none" for row in rows)
    write_table_page(out_dir / "index.html", f"condsynth: {sketches_dir.name}",
                     ["sketch file", "sketch", "hints", "result"], rows,
                     [f"{len(rows)} sketches ({with_hints} with colour hints) coloured by "
                      f"{method.config.method}"])
    return out_dir, notes
