"""A simulator of labelled garment silhouettes, one template per Fashion-MNIST class: the
synthetic side of SimGAN's S+U learning (simulated + unsupervised real images).

Each image is a flat-shaded silhouette on a black background, drawn from its class's template
(T-shirt: a torso and short sleeves; trouser: two legs; ankle boot: a sole, a toe to the left
and a shaft; ...) with random proportions, position and grey level, and no texture: labels are
exact and free, the look is plainly not a photograph. Fashion-MNIST's real images (28x28 grey,
the same ten classes, shoes pointing left) are the unlabelled real side; a task model trained
on the simulator's images and tested on the real ones measures the gap that a refiner should
close.

Images are drawn at 4x the output size as polygons and ellipses, then box-filtered down (the
edges are anti-aliased, the areas stay flat). Everything is a function of (seed, index).

``write_garments(out, count)`` writes ``out/00000.png ...`` and ``out/dataset.json`` (the
``class_folders`` source's label file, class ids and names as Fashion-MNIST's), optionally with
real images beside it in the ``unpaired`` layout (``out/A`` synthetic, ``out/B`` real).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from condsynth.errors import ConfigError

__all__ = ["GARMENT_CLASSES", "render_garment", "write_garments"]

# Fashion-MNIST's classes, in its label order.
GARMENT_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]

_SUPERSAMPLE = 4
Shape = tuple[str, list[tuple[float, float]], float]     # kind, points in [0, 1]^2, grey in [0, 1]


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _top(rng: np.random.Generator, grey: float, sleeve: float, length: float,
         detail: str) -> list[Shape]:
    """Torso with sleeves (T-shirt, pullover, coat, shirt): ``sleeve`` is the sleeve length as a
    fraction of the torso's height, ``length`` the torso's height."""
    half = _u(rng, 0.2, 0.28)                   # half the torso's width
    top, bottom = 0.5 - length / 2, 0.5 + length / 2
    flare = _u(rng, -0.02, 0.03)
    shoulder = top + _u(rng, 0.02, 0.05)
    torso = [(0.5 - half, shoulder), (0.5 - 0.08, top), (0.5 + 0.08, top), (0.5 + half, shoulder),
             (0.5 + half + flare, bottom), (0.5 - half - flare, bottom)]
    shapes: list[Shape] = [("polygon", torso, grey)]
    reach = sleeve * length                     # how far down the sleeve goes
    width = _u(rng, 0.09, 0.13)
    out = _u(rng, 0.08, 0.2) * min(1.0, sleeve * 2)
    for side in (-1, 1):
        x0 = 0.5 + side * half
        shapes.append(("polygon", [(x0, shoulder), (x0 + side * (out + width * 0.6),
                                                    shoulder + reach),
                                   (x0 + side * out - side * width * 0.4, shoulder + reach + 0.02),
                                   (x0, shoulder + width * 1.4)], grey))
    neck = _u(rng, 0.05, 0.08)
    if detail == "round":
        shapes.append(("ellipse", [(0.5 - neck, top - neck * 0.6), (0.5 + neck, top + neck * 0.8)],
                       0.0))
    elif detail in ("collar", "opening"):
        shapes.append(("polygon", [(0.5 - neck, top), (0.5 + neck, top),
                                   (0.5, top + _u(rng, 0.1, 0.18))], 0.0))
        shade = grey * _u(rng, 0.45, 0.7)
        line = 0.012 if detail == "collar" else 0.02
        shapes.append(("polygon", [(0.5 - line, top + 0.1), (0.5 + line, top + 0.1),
                                   (0.5 + line, bottom), (0.5 - line, bottom)], shade))
    return shapes


def _tshirt(rng: np.random.Generator, grey: float) -> list[Shape]:
    return _top(rng, grey, sleeve=_u(rng, 0.15, 0.3), length=_u(rng, 0.72, 0.9), detail="round")


def _pullover(rng: np.random.Generator, grey: float) -> list[Shape]:
    return _top(rng, grey, sleeve=_u(rng, 0.8, 0.95), length=_u(rng, 0.7, 0.82), detail="round")


def _coat(rng: np.random.Generator, grey: float) -> list[Shape]:
    return _top(rng, grey, sleeve=_u(rng, 0.8, 0.95), length=_u(rng, 0.82, 0.95),
                detail="opening")


def _shirt(rng: np.random.Generator, grey: float) -> list[Shape]:
    return _top(rng, grey, sleeve=_u(rng, 0.5, 0.9), length=_u(rng, 0.74, 0.9), detail="collar")


def _trouser(rng: np.random.Generator, grey: float) -> list[Shape]:
    half = _u(rng, 0.13, 0.2)
    top, bottom = _u(rng, 0.03, 0.08), _u(rng, 0.92, 0.97)
    crotch = top + _u(rng, 0.2, 0.32)
    gap = _u(rng, 0.01, 0.04)
    hem = half + _u(rng, -0.04, 0.03)
    return [("polygon", [(0.5 - half, top), (0.5 + half, top), (0.5 + hem, bottom),
                         (0.5 + gap, bottom), (0.5, crotch), (0.5 - gap, bottom),
                         (0.5 - hem, bottom)], grey)]


def _dress(rng: np.random.Generator, grey: float) -> list[Shape]:
    top, bottom = _u(rng, 0.04, 0.1), _u(rng, 0.9, 0.97)
    chest = _u(rng, 0.12, 0.18)
    waist_y = top + _u(rng, 0.25, 0.35)
    waist = chest * _u(rng, 0.7, 0.95)
    hem = _u(rng, 0.25, 0.38)
    shapes: list[Shape] = [("polygon", [(0.5 - chest, top), (0.5 + chest, top),
                                        (0.5 + waist, waist_y), (0.5 + hem, bottom),
                                        (0.5 - hem, bottom), (0.5 - waist, waist_y)], grey)]
    neck = _u(rng, 0.04, 0.07)
    shapes.append(("ellipse", [(0.5 - neck, top - neck), (0.5 + neck, top + neck)], 0.0))
    return shapes


def _sole(rng: np.random.Generator, left: float, right: float, y: float,
          thick: float, grey: float) -> Shape:
    return ("polygon", [(left, y), (right, y), (right, y + thick), (left + 0.04, y + thick)], grey)


def _sandal(rng: np.random.Generator, grey: float) -> list[Shape]:
    left, right = _u(rng, 0.04, 0.1), _u(rng, 0.88, 0.96)
    base = _u(rng, 0.6, 0.72)
    heel = _u(rng, 0.0, 0.2)                    # a raised heel
    shapes: list[Shape] = [
        ("polygon", [(left, base), (right - 0.15, base - heel), (right, base - heel),
                     (right, base - heel + 0.05), (right - 0.15, base - heel + 0.05),
                     (left + 0.03, base + 0.06)], grey)]
    for _ in range(int(rng.integers(2, 5))):    # thin straps over the foot
        x = _u(rng, left + 0.1, right - 0.15)
        w = _u(rng, 0.03, 0.06)
        h = _u(rng, 0.12, 0.25)
        y = base - heel * (x - left) / (right - left)
        shapes.append(("polygon", [(x, y), (x + w, y), (x + w + 0.05, y - h),
                                   (x + 0.05, y - h)], grey * _u(rng, 0.8, 1.0)))
    return shapes


def _sneaker(rng: np.random.Generator, grey: float) -> list[Shape]:
    left, right = _u(rng, 0.02, 0.08), _u(rng, 0.92, 0.98)
    base = _u(rng, 0.62, 0.72)
    height = _u(rng, 0.22, 0.32)
    toe = _u(rng, 0.25, 0.35)
    upper = [(left, base), (left + 0.05, base - height * 0.45), (left + toe, base - height * 0.6),
             (right - 0.25, base - height), (right, base - height * 0.95), (right, base)]
    sole = _sole(rng, left, right, base, _u(rng, 0.05, 0.09), min(1.0, grey * 1.25))
    return [("polygon", upper, grey), sole]


def _ankle_boot(rng: np.random.Generator, grey: float) -> list[Shape]:
    left, right = _u(rng, 0.04, 0.12), _u(rng, 0.85, 0.95)
    base = _u(rng, 0.82, 0.9)
    shaft_left = _u(rng, 0.42, 0.55)
    top = _u(rng, 0.05, 0.15)
    boot = [(left, base), (left + 0.04, base - 0.22), (shaft_left, base - _u(rng, 0.3, 0.4)),
            (shaft_left, top), (right - 0.02, top), (right, base)]
    sole = _sole(rng, left, right, base, _u(rng, 0.05, 0.09), grey * _u(rng, 0.5, 0.8))
    return [("polygon", boot, grey), sole]


def _bag(rng: np.random.Generator, grey: float) -> list[Shape]:
    half = _u(rng, 0.3, 0.45)
    top, bottom = _u(rng, 0.3, 0.45), _u(rng, 0.85, 0.95)
    slant = _u(rng, 0.0, 0.06)
    shapes: list[Shape] = [("polygon", [(0.5 - half + slant, top), (0.5 + half - slant, top),
                                        (0.5 + half, bottom), (0.5 - half, bottom)], grey)]
    if rng.random() < 0.8:                      # a handle: a ring above the body
        hw = _u(rng, 0.12, 0.25)
        hh = _u(rng, 0.12, 0.25)
        shapes.append(("ring", [(0.5 - hw, top - hh), (0.5 + hw, top + hh)], grey))
    return shapes


_TEMPLATES: list[Callable[[np.random.Generator, float], list[Shape]]] = [
    _tshirt, _trouser, _pullover, _dress, _coat, _sandal, _shirt, _sneaker, _bag, _ankle_boot]


def render_garment(class_id: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A (size, size) uint8 silhouette of Fashion-MNIST class ``class_id`` (0..9), drawn with
    ``rng`` (random proportions, a small shift and scale, a flat grey level)."""
    if not 0 <= class_id < len(_TEMPLATES):
        raise ConfigError(f"garment class {class_id}; expected 0..{len(_TEMPLATES) - 1} "
                          f"({', '.join(GARMENT_CLASSES)})")
    grey = _u(rng, 0.35, 1.0)
    shapes = _TEMPLATES[class_id](rng, grey)
    big = size * _SUPERSAMPLE
    scale = big * _u(rng, 0.88, 1.0)
    dx, dy = (big - scale) / 2 + _u(rng, -1, 1) * big * 0.03, (big - scale) / 2
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    for kind, points, level in shapes:
        xy = [(dx + x * scale, dy + y * scale) for x, y in points]
        fill = int(round(255 * min(max(level, 0.0), 1.0)))
        if kind == "polygon":
            draw.polygon(xy, fill=fill)
        elif kind == "ellipse":
            draw.ellipse(xy, fill=fill)
        else:                                   # ring: the outline of an ellipse
            draw.ellipse(xy, outline=fill, width=max(1, round(0.035 * scale)))
    return np.asarray(canvas.resize((size, size), Image.BOX))


def write_garments(out: str | Path, count: int, seed: int = 0, size: int = 28,
                   real: str | Path | None = None, real_count: int | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Write ``count`` garment silhouettes (classes in turn: 0, 1, ..., 9, 0, ...) as
    ``NNNNN.png`` with a ``dataset.json`` of their classes.

    With ``real`` (a folder of Fashion-MNIST IDX files), the output is an ``unpaired`` dataset:
    the silhouettes in ``out/A`` and ``real_count`` (default ``count``) real training images,
    chosen at random and without their labels, in ``out/B``.
    """
    if count < 1:
        raise ConfigError(f"--count {count}: expected at least 1 image")
    out = Path(out)
    synthetic = out / "A" if real is not None else out
    synthetic.mkdir(parents=True, exist_ok=True)
    labels = []
    for index in tqdm(range(count), disable=not progress, desc="garments", unit="image"):
        class_id = index % len(GARMENT_CLASSES)
        image = render_garment(class_id, np.random.default_rng([seed, index]), size)
        name = f"{index:05d}.png"
        Image.fromarray(image).save(synthetic / name)
        labels.append([name, class_id])
    (synthetic / "dataset.json").write_text(json.dumps(
        {"labels": labels, "classes": GARMENT_CLASSES}, indent=0))
    summary: dict[str, Any] = {"synthetic": str(synthetic), "count": count, "size": size}
    if real is not None:
        summary["real"] = str(out / "B")
        summary["real_count"] = write_unlabelled(real, out / "B", real_count or count, seed, size)
    return summary


def write_unlabelled(idx_folder: str | Path, out: str | Path, count: int, seed: int = 0,
                     size: int = 28, phase: str = "train") -> int:
    """``count`` random images of an IDX set's ``phase`` split as PNGs in ``out``, without
    their labels (the real side of S+U learning). Returns how many were written."""
    from condsynth.data.idx import idx_set, read_idx_set

    pixels, _ = read_idx_set(idx_set(idx_folder, phase))
    if count > len(pixels):
        raise ConfigError(f"--real-count {count}, but {idx_folder} holds {len(pixels)} {phase} "
                          "images. Fix: ask for at most that many.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = np.sort(np.random.default_rng([seed, 1]).choice(len(pixels), count, replace=False))
    for index in chosen:
        image = Image.fromarray(pixels[index])
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        image.save(out / f"real_{index:05d}.png")
    return count
