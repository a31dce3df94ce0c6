"""Refine a folder of synthetic images with a trained image-to-image model (SimGAN's refiner),
keeping their names and their labels, so that the output is a dataset of the same layout.

Every image under the input folder (searched recursively: class folders stay class folders) is
refined at its own size and written under the same relative path, as PNG (a ``.jpg`` input
becomes ``.png``, and a label file naming it is rewritten to match). The label files of the
single-image sources (``dataset.json``, ``attributes.csv``, ``classes.json``) are copied beside
the images, so ``condsynth train --data OUT`` or a task model reads the refined images with the
synthetic ones' labels.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from condsynth.data.dataset import image_to_tensor, tensor_to_image
from condsynth.data.io import read_image
from condsynth.data.layouts import ATTRIBUTES_CSV, LABELS_JSON, list_images
from condsynth.data.sources import to_channels
from condsynth.errors import ConfigError, DataError
from condsynth.methods.base import Capability, Method
from condsynth.pages import save_png

__all__ = ["refine_folder", "LABEL_FILES"]

LABEL_FILES = (LABELS_JSON, ATTRIBUTES_CSV, "classes.json")


def refine_folder(method: Method, images: str | Path, out: str | Path, batch_size: int = 64,
                  progress: bool = True) -> dict[str, Any]:
    """Refine every image under ``images`` into ``out`` (same relative names, PNG) and copy
    the label files; returns a summary (counts, folders)."""
    spec = method.config.condition
    if spec.kind != "image" or not ({Capability.IMAGE, Capability.SKETCH}
                                    & method.capabilities()):
        raise ConfigError(f"{method.name} is conditioned on a {spec.kind}, not an image: it "
                          "cannot refine images. Fix: give a run of an image-to-image method "
                          "(e.g. --method simgan).")
    images, out = Path(images), Path(out)
    if not images.is_dir():
        raise DataError(f"{images}: not a folder. Fix: give the folder of synthetic images.")
    if out.resolve() == images.resolve():
        raise ConfigError(f"--out {out} is the input folder; refining in place would overwrite "
                          "the synthetic images. Fix: choose another --out.")
    files = list_images(images, recursive=True)
    files = [f for f in files if out.resolve() not in f.resolve().parents]
    if not files:
        raise DataError(f"{images}: no images found (searched recursively). Fix: check the "
                        "folder.")
    renamed: dict[str, str] = {}
    bar = tqdm(total=len(files), disable=not progress, desc="refine", unit="image")
    # Images of one size go through the network together.
    by_size: dict[tuple[int, ...], list[tuple[Path, np.ndarray]]] = {}
    for path in files:
        pixels = to_channels(read_image(path), spec.image_channels)
        group = by_size.setdefault(pixels.shape, [])
        group.append((path, pixels))
        if len(group) == batch_size:
            _refine_batch(method, group, images, out, renamed)
            bar.update(len(group))
            group.clear()
    for group in by_size.values():
        if group:
            _refine_batch(method, group, images, out, renamed)
            bar.update(len(group))
    bar.close()
    copied = _copy_label_files(images, out, renamed)
    return {"images": len(files), "out": str(out), "label_files": copied}


def _refine_batch(method: Method, group: list[tuple[Path, np.ndarray]], root: Path, out: Path,
                  renamed: dict[str, str]) -> None:
    batch = torch.stack([image_to_tensor(p[..., None] if p.ndim == 2 else p) for _, p in group])
    refined = method.generate(batch.to(method.device))
    for (path, _), image in zip(group, refined, strict=True):
        relative = path.relative_to(root)
        target = relative.with_suffix(".png")
        if target != relative:
            renamed[relative.as_posix()] = target.as_posix()
        picture = tensor_to_image(image.cpu())
        save_png(picture[..., 0] if image.shape[0] == 1 else picture, out / target)  # grey: L


def _copy_label_files(images: Path, out: Path, renamed: dict[str, str]) -> list[str]:
    """Copy every label file under ``images`` to the same place under ``out``, with the file
    names of converted images updated."""
    copied = []
    for path in sorted(images.rglob("*")):
        if path.name not in LABEL_FILES or not path.is_file():
            continue
        if out.resolve() in path.resolve().parents:
            continue
        relative = path.relative_to(images)
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        base = relative.parent.as_posix()
        local = {k[len(base) + 1:] if base != "." else k: v[len(base) + 1:] if base != "." else v
                 for k, v in renamed.items() if base == "." or k.startswith(base + "/")}
        if path.name == LABELS_JSON and local:
            raw = json.loads(path.read_text())
            for entry in raw.get("labels", []):
                entry[0] = local.get(entry[0], entry[0])
            target.write_text(json.dumps(raw, indent=0))
        elif path.name == ATTRIBUTES_CSV and local:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.reader(handle))
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(rows[0])
            for row in rows[1:]:
                if row:
                    row[0] = local.get(row[0].strip(), row[0])
                writer.writerow(row)
            target.write_text(buffer.getvalue())
        else:
            shutil.copyfile(path, target)
        copied.append(relative.as_posix())
    return copied
