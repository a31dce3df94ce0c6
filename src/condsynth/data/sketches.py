"""Line sketches and colour hints for Auto-painter (Liu et al., 2017, "Auto-painter: Cartoon
Image Generation from Sketch by Using Conditional Generative Adversarial Networks").

* XDoG line extraction (Winnemöller et al., 2012, "XDoG: An eXtended difference-of-Gaussians
  compendium including advanced image stylization"), with fixed or randomly drawn parameters;
* reading and cleaning user-drawn sketches (any size, binarized or grey, inverted, on
  transparent paper) with clear errors for what cannot be a sketch;
* colour hints: sampled from the real image in training, read from a hint image at inference;
* writing a folder of images as sketch/colour pairs (the ``sketch_pairs`` layout).

Conventions. A sketch is white paper with dark lines: as an array (H, W) uint8 with paper 255
and ink 0; as a tensor (1, H, W) float in [-1, 1] with paper 1 and ink -1. Hints are a
(4, H, W) tensor: RGB in [-1, 1] where a hint is given and 0 elsewhere, then a mask channel
that is 1 on hinted pixels and 0 elsewhere.

A hint image (``condsynth synthesize --hints H.png``) is an RGB or RGBA picture of the sketch's
size (or of its aspect ratio: it is then resized, with a note). With an alpha channel, the
opaque pixels (alpha >= 128) are the hints, whatever their colour; without one, every pixel that
is not near-white (some channel below 235) is a hint, so paint the strokes on white. White hints
need the alpha channel. Do not paint on a copy of the sketch: its black lines would be hints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter
from torch import Tensor
from tqdm.auto import tqdm

from condsynth.data.io import _with_image, read_image
from condsynth.data.layouts import IMAGE_SUFFIXES
from condsynth.errors import DataError

__all__ = ["XDoGParams", "xdog", "random_xdog_params", "to_grey", "image_sketch",
           "sketch_to_tensor", "normalize_sketch", "load_sketch", "HINT_CHANNELS",
           "sample_hints", "hints_from_array", "load_hints", "hint_picture",
           "write_sketch_pairs"]

HINT_CHANNELS = 4           # RGB + mask
# Training strokes: the longest is this fraction of the shorter image side, and their
# half-width is about this fraction (at least 0.75 px), like a small brush in a paint program.
STROKE_LENGTH = 0.08
STROKE_RADIUS = 0.006
HINT_WHITE_LEVEL = 235      # hint images without alpha: pixels with every channel >= this are paper
INK_LEVEL = 128             # sketch pixels darker than this count as drawn lines
LUMA = np.array([0.299, 0.587, 0.114], np.float32)   # Rec. 601 grey, as PIL's convert("L")


# ----------------------------------------------------------------------------- XDoG


@dataclass(frozen=True)
class XDoGParams:
    """Parameters of XDoG on grey levels in [0, 1] (Winnemöller et al., 2012, eq. 3 and 4).

    D = G_sigma(I) - tau * G_{k sigma}(I); a pixel is paper (1) where D >= epsilon, else
    1 + tanh(phi * (D - epsilon)): the further below the threshold, the darker the ink.
    """

    sigma: float = 0.8       # scale of the narrow Gaussian in pixels: line width and detail
    k: float = 1.6           # ratio of the wide Gaussian's scale (1.6: DoG approximates LoG)
    tau: float = 0.98        # weight of the wide Gaussian; nearer 1 keeps fainter edges
    epsilon: float = -0.01   # threshold on D below which ink starts
    phi: float = 200.0       # steepness of the soft threshold; large = nearly binary lines
    binarize: bool = False   # threshold the result at 0.5, as a pen (not pencil) drawing


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB (or (H, W) grey) → (H, W) float32 grey levels in [0, 1]."""
    grey = image.astype(np.float32) / 255.0
    return grey if grey.ndim == 2 else grey[..., :3] @ LUMA


def xdog(grey: np.ndarray, params: XDoGParams = XDoGParams()) -> np.ndarray:
    """Extended difference of Gaussians: (H, W) grey levels in [0, 1] → (H, W) float32 line
    drawing in [0, 1] (white paper 1, dark lines toward 0). Lines fall on the dark side of
    edges; flat areas, whatever their grey, stay white (D = (1 - tau) I >= epsilon there)."""
    grey = np.asarray(grey, np.float32)
    narrow = gaussian_filter(grey, params.sigma)
    wide = gaussian_filter(grey, params.sigma * params.k)
    response = narrow - params.tau * wide
    out = np.where(response >= params.epsilon, 1.0,
                   1.0 + np.tanh(params.phi * (response - params.epsilon)))
    if params.binarize:
        out = (out >= 0.5).astype(np.float32)
    return out.astype(np.float32)


def random_xdog_params(rng: np.random.Generator) -> XDoGParams:
    """XDoG parameters drawn around the defaults, so a model trained on them does not learn one
    filter's quirks (line width, amount of detail, pencil or pen). Always draws six numbers
    from ``rng``, so the item's later draws do not depend on the values."""
    u_sigma, u_tau, u_eps, u_phi, u_bin, u_k = rng.random(6)
    return XDoGParams(sigma=0.5 + 0.7 * u_sigma,                # 0.5 .. 1.2 px
                      k=1.4 + 0.4 * u_k,                        # 1.4 .. 1.8
                      tau=0.97 + 0.02 * u_tau,                  # 0.97 .. 0.99
                      epsilon=-0.02 + 0.02 * u_eps,             # -0.02 .. 0
                      phi=float(math.exp(math.log(50.0) + math.log(6.0) * u_phi)),  # 50 .. 300
                      binarize=bool(u_bin < 0.3))


def image_sketch(image: np.ndarray, params: XDoGParams = XDoGParams()) -> np.ndarray:
    """(H, W, 3) uint8 colour image → (H, W) uint8 line drawing (paper 255, ink 0)."""
    return np.round(xdog(to_grey(image), params) * 255.0).astype(np.uint8)


def sketch_to_tensor(sketch: np.ndarray) -> Tensor:
    """(H, W) uint8 sketch → (1, H, W) float32 in [-1, 1] (paper 1, ink -1)."""
    return torch.tensor(sketch, dtype=torch.uint8)[None].float().div(127.5).sub(1.0)


# ----------------------------------------------------------------------------- user sketches


def normalize_sketch(rgb: np.ndarray, source: str = "sketch",
                     strict: bool = True) -> tuple[np.ndarray, list[str]]:
    """Turn whatever a user calls a sketch into dark lines on white paper.

    Args:
        rgb: (H, W, 3) float32 in [0, 1] (transparency already composited onto white).
        source: names the file in messages.
        strict: raise for inputs that cannot be a sketch (a colour photo, nothing drawn);
            otherwise only the automatic fixes are applied (training pairs).
    Returns:
        The (H, W) uint8 sketch (paper 255) and notes about the automatic fixes made:
        white lines on a dark ground are inverted; grey paper is brought to white.
    Raises:
        DataError: (strict) a colour photograph, or a blank / one-colour image.
    """
    notes: list[str] = []
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    coloured = float((chroma > 0.2).mean())
    if strict and coloured > 0.15:
        raise DataError(
            f"{source}: this looks like a colour picture, not a line sketch ({coloured:.0%} of "
            "its pixels are strongly coloured). Auto-painter colours line drawings: dark lines "
            "on white. Fix: pass the drawing itself, or make a sketch from the photo first with "
            "`condsynth data sketches FOLDER --out OUT` (XDoG lines) and pass "
            "OUT/train_sketch/<name>.png.")
    grey = rgb @ LUMA
    if strict and float(grey.max() - grey.min()) < 0.1:
        shade = "black" if grey.mean() < 0.5 else "white" if grey.mean() > 0.9 else "one grey"
        raise DataError(f"{source}: the sketch is all {shade}: nothing is drawn on it. Fix: "
                        "pass a drawing with dark lines on white paper.")
    if float(np.median(grey)) < 0.5:
        # Paper covers most of a drawing, so a dark majority means light lines on a dark ground.
        grey = 1.0 - grey
        notes.append(f"{source}: light lines on a dark background: inverted to dark lines on "
                     "white, as the model expects.")
    paper = float(np.percentile(grey, 90))
    if 0.1 < paper < 0.97:
        grey = np.clip(grey / paper, 0.0, 1.0)
        notes.append(f"{source}: grey paper (level {paper:.2f}) brought to white.")
    sketch = np.round(grey * 255.0).astype(np.uint8)
    if strict:
        ink = float((sketch < INK_LEVEL).mean())
        if ink < 1e-4:
            raise DataError(f"{source}: no lines found (no pixel darker than mid-grey once the "
                            "paper is white). Fix: pass a drawing with dark lines on white "
                            "paper.")
        mid = float(((sketch > 50) & (sketch < 205)).mean())
        if mid > 0.5:
            notes.append(f"{source}: most pixels are mid-grey, so this looks more like a photo "
                         "than a line drawing; expect a poor result (make lines first with "
                         "`condsynth data sketches`).")
    return sketch, notes


def _rgb_on_white(img: Image.Image) -> np.ndarray:
    """An image of any mode as (H, W, 3) float32 in [0, 1], transparent areas made white."""
    if img.mode.startswith("I;16") or img.mode == "I":
        grey = np.asarray(img).astype(np.float32)
        grey = grey / (65535.0 if img.mode.startswith("I;16") else max(float(grey.max()), 1.0))
        return np.repeat(grey[..., None], 3, axis=2)
    rgba = np.asarray(img.convert("RGBA")).astype(np.float32) / 255.0
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + (1.0 - alpha)


def load_sketch(path: str | Path, strict: bool = True) -> tuple[np.ndarray, list[str]]:
    """Read a sketch file (PNG/JPEG, any mode and size) as (H, W) uint8, cleaned with
    :func:`normalize_sketch`; returns the sketch and the notes about what was fixed."""
    path = Path(path)
    return _with_image(path, lambda img: normalize_sketch(_rgb_on_white(img), str(path), strict))


# ----------------------------------------------------------------------------- colour hints


def sample_hints(image: Tensor, max_strokes: int, none_prob: float) -> Tensor:
    """Colour hints as a user might give them, taken from the real image.

    Each item gets no hint with probability ``none_prob`` (so the model learns to colour
    alone), else 1 .. ``max_strokes`` short straight strokes, each of one colour: the real
    image's colour (3x3 average) where the stroke starts. Random numbers come from torch's
    generator of the image's device, which the trainer seeds and checkpoints.

    Args:
        image: (B, 3, H, W) real images in [-1, 1].
    Returns:
        (B, 4, H, W): hint RGB in [-1, 1] on the strokes (0 elsewhere), then the stroke mask.
    """
    batch, _, height, width = image.shape
    device = image.device
    rgb = image.new_zeros(batch, 3, height, width)
    mask = torch.zeros(batch, 1, height, width, dtype=torch.bool, device=device)
    if max_strokes <= 0:
        return torch.cat([rgb, mask.to(image.dtype)], 1)
    count = torch.randint(1, max_strokes + 1, (batch,), device=device)
    count = torch.where(torch.rand(batch, device=device) < none_prob, 0, count)
    active = torch.arange(max_strokes, device=device)[None] < count[:, None]      # (B, S)
    shorter = min(height, width)
    u = torch.rand(5, batch, max_strokes, device=device, dtype=image.dtype)
    y0, x0 = u[0] * height, u[1] * width                                          # (B, S)
    angle, length = u[2] * (2 * math.pi), u[3] * (STROKE_LENGTH * shorter)
    dy, dx = length * torch.sin(angle), length * torch.cos(angle)
    radius = max(0.75, STROKE_RADIUS * shorter) * (0.5 + u[4])
    # One colour per stroke, read where it starts; averaged so that one noisy pixel does not
    # decide it.
    smooth = F.avg_pool2d(image.detach(), 3, stride=1, padding=1, count_include_pad=False)
    rows = y0.long().clamp(0, height - 1)
    cols = x0.long().clamp(0, width - 1)
    flat = (rows * width + cols).view(batch, 1, max_strokes).expand(batch, 3, max_strokes)
    colours = smooth.flatten(2).gather(2, flat)                                   # (B, 3, S)
    ys = torch.arange(height, device=device, dtype=image.dtype).view(1, height, 1) + 0.5
    xs = torch.arange(width, device=device, dtype=image.dtype).view(1, 1, width) + 0.5
    for s in range(max_strokes):   # one stroke at a time keeps memory at (B, H, W)
        py = ys - y0[:, s, None, None]                                            # (B, H, 1)
        px = xs - x0[:, s, None, None]                                            # (B, 1, W)
        sy, sx = dy[:, s, None, None], dx[:, s, None, None]
        along = ((py * sy + px * sx) / (sy * sy + sx * sx + 1e-6)).clamp(0.0, 1.0)
        dist2 = (py - along * sy) ** 2 + (px - along * sx) ** 2                  # (B, H, W)
        on = (dist2 <= radius[:, s, None, None] ** 2) & active[:, s, None, None]
        on = on.unsqueeze(1)                                                      # (B, 1, H, W)
        rgb = torch.where(on, colours[:, :, s, None, None], rgb)                  # later on top
        mask |= on
    return torch.cat([rgb, mask.to(image.dtype)], 1)


def hints_from_array(picture: np.ndarray) -> Tensor:
    """A hint picture (H, W, 3) or (H, W, 4) uint8 → (4, H, W) hints (see the module doc)."""
    rgb = picture[..., :3]
    if picture.shape[-1] == 4 and bool((picture[..., 3] < 255).any()):
        mask = picture[..., 3] >= 128
    else:
        mask = (rgb < HINT_WHITE_LEVEL).any(axis=2)
    colour = torch.tensor(rgb, dtype=torch.uint8).permute(2, 0, 1).float().div(127.5).sub(1.0)
    mask_t = torch.tensor(mask, dtype=torch.float32)[None]
    return torch.cat([colour * mask_t, mask_t], 0)


def load_hints(path: str | Path, size_hw: tuple[int, int]) -> tuple[Tensor, list[str]]:
    """Read a hint image for a sketch of ``size_hw`` (H, W): (4, H, W) hints and notes.

    A picture of another size but the same aspect ratio (within 2 %) is resized with NEAREST
    (hint colours must not blend with the paper); any other size is an error.
    """
    path = Path(path)
    height, width = size_hw

    def decode(img: Image.Image) -> tuple[Tensor, list[str]]:
        notes = []
        rgba = img.convert("RGBA")
        if rgba.size != (width, height):
            w, h = rgba.size
            if abs((w / h) / (width / height) - 1.0) > 0.02:
                raise DataError(
                    f"{path}: the hint image is {w}x{h} but the sketch is {width}x{height} "
                    "(width x height), another shape. Fix: draw the hints on a canvas of the "
                    "sketch's size (or at least of its aspect ratio, it is then resized).")
            rgba = rgba.resize((width, height), Image.Resampling.NEAREST)
            notes.append(f"{path}: hint image resized from {w}x{h} to the sketch's "
                         f"{width}x{height}.")
        hints = hints_from_array(np.asarray(rgba))
        covered = float(hints[3].mean())
        if covered == 0.0:
            notes.append(f"{path}: no hint found (every pixel is white or transparent); "
                         "colouring without hints.")
        elif covered > 0.4:
            notes.append(f"{path}: hints cover {covered:.0%} of the picture; hints are meant as "
                         "sparse strokes on white (or transparent) paper, and every non-white "
                         "pixel counts as one.")
        return hints, notes

    return _with_image(path, decode)


def hint_picture(hints: Tensor) -> np.ndarray:
    """(4, H, W) hints → (H, W, 3) uint8 picture: hint colours on white, for pages."""
    colour = hints[:3].detach().float().cpu().clamp(-1, 1).add(1).mul(127.5)
    mask = hints[3:4].detach().float().cpu() > 0.5
    picture = torch.where(mask, colour, torch.full_like(colour, 255.0))
    return picture.round().to(torch.uint8).permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------- pair folders


def _list_images(folder: Path, skip: Path | None) -> list[Path]:
    paths = sorted(p for p in folder.rglob("*") if p.is_file()
                   and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if skip is not None:
        skip = skip.resolve()
        paths = [p for p in paths if skip not in p.resolve().parents]
    return paths


def _resize_shorter(image: np.ndarray, size: int | None) -> np.ndarray:
    if not size:
        return image
    height, width = image.shape[:2]
    scale = size / min(height, width)
    new_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
    if new_hw == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize(new_hw[::-1], Image.Resampling.BICUBIC))


def write_sketch_pairs(images_dir: str | Path, out_dir: str | Path,
                       params: XDoGParams = XDoGParams(), random_params: bool = False,
                       size: int | None = None, test_count: int = 0, seed: int = 0,
                       progress: bool = True) -> dict[str, Any]:
    """Write every image under ``images_dir`` (searched recursively) as a sketch/colour pair in
    the ``sketch_pairs`` layout: ``out_dir/{phase}_sketch/<name>.png`` (8-bit grey, paper
    white) and ``out_dir/{phase}_img/<name>.png`` (the colour image).

    Args:
        params: the XDoG parameters (ignored with ``random_params``).
        random_params: draw parameters per image from ``(seed, index)`` instead.
        size: resize each image so that its shorter side is this many pixels first.
        test_count: the last ``test_count`` images (sorted by name) go to the test phase.
        seed: fixes the random parameters; the same seed writes the same files.
    Returns:
        A summary: counts per phase and the folder written.
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: folder not found. Fix: give a folder of images.")
    paths = _list_images(images_dir, skip=out_dir)
    if not paths:
        raise DataError(f"{images_dir}: no images found (looked recursively for "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))}). Fix: check the folder.")
    if not 0 <= test_count < len(paths):
        raise DataError(f"--test-count {test_count}: must be at least 0 and below the "
                        f"{len(paths)} images found in {images_dir}.")
    counts = {"train": 0, "test": 0}
    for index, path in enumerate(tqdm(paths, desc="sketches", unit="image",
                                      disable=not progress)):
        phase = "test" if index >= len(paths) - test_count else "train"
        name = path.relative_to(images_dir).with_suffix("").as_posix().replace("/", "__")
        image = _resize_shorter(read_image(path), size)
        item_params = (random_xdog_params(np.random.default_rng([seed, index]))
                       if random_params else params)
        sketch_path = out_dir / f"{phase}_sketch" / f"{name}.png"
        image_path = out_dir / f"{phase}_img" / f"{name}.png"
        sketch_path.parent.mkdir(parents=True, exist_ok=True)
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image_sketch(image, item_params)).save(sketch_path)
        Image.fromarray(image).save(image_path)
        counts[phase] += 1
    return {"out": str(out_dir), "layout": "sketch_pairs", "train": counts["train"],
            "test": counts["test"]}
