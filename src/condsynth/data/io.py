"""Reading label maps, instance maps, images and palettes, with errors that speak to the user.

Every failure raises :class:`~condsynth.errors.DataError` naming the file, the value found, what
was expected and the fix; a user never meets a raw PIL or numpy traceback. Label and instance
maps are single-channel integer images (Cityscapes / pix2pixHD / SPADE convention); a colour
(RGB) label map is read only through an explicit palette.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from condsynth.errors import DataError

__all__ = ["read_label", "read_instance", "read_image", "load_palette", "format_colour"]

Palette = dict[tuple[int, int, int], int]

_T = TypeVar("_T")

# Modes whose pixel values are class or instance ids as they stand. For "P" the values are
# palette indices, which is what tools such as the VOC/ADE exporters store as class ids.
_ID_MODES = {"1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_COLOUR_MODES = {"RGB", "RGBA", "RGBX"}
_JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif"}


def format_colour(colour: tuple[int, int, int]) -> str:
    """``(255, 0, 16)`` → ``'#ff0010 (255, 0, 16)'``, the way error messages show a colour."""
    r, g, b = colour
    return f"#{r:02x}{g:02x}{b:02x} ({r}, {g}, {b})"


def _with_image(path: str | Path, use: Callable[[Image.Image], _T]) -> _T:
    """Open ``path`` fully (PIL decodes lazily, so ``load()`` is what finds truncation) and
    hand the decoded image to ``use`` while the file is still open."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. Fix: check the dataset folder and the path.")
    try:
        with Image.open(path) as img:
            img.load()
            return use(img)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: could not be read as an image: {err}. "
                        "Fix: re-export it or remove it.") from None


def _ids_array(img: Image.Image) -> np.ndarray:
    """The pixel values of a single-channel image as (H, W) int64, without int16 wraparound."""
    arr = np.asarray(img)
    if arr.dtype == np.int16:
        # Some decoders hand 16-bit PNGs back as signed; the bits are unsigned ids.
        arr = arr.view(np.uint16)
    return arr.astype(np.int64)


def _is_jpeg(path: Path, img: Image.Image) -> bool:
    return path.suffix.lower() in _JPEG_SUFFIXES or img.format == "JPEG"


def read_label(path: str | Path, palette: Palette | None = None) -> np.ndarray:
    """Read a label map as (H, W) int64 class ids.

    Single-channel PNGs (modes ``L``, ``P`` — the index values, not their colours — ``I;16`` and
    ``I``) are read as ids. A colour (RGB/RGBA) label map needs ``palette`` (see
    :func:`load_palette`); every colour in it must be in the palette. A JPEG label map is read
    with a ``UserWarning``: JPEG is lossy, so ids near region borders are wrong.
    """
    path = Path(path)

    def decode(img: Image.Image) -> np.ndarray:
        if _is_jpeg(path, img):
            warnings.warn(f"{path}: label map saved as JPEG. JPEG is lossy, so the class ids at "
                          "region borders will be wrong. Fix: save label maps as PNG.",
                          UserWarning, stacklevel=4)
        mode = img.mode
        if mode in ("LA", "PA"):       # an alpha channel carries no class information
            img, mode = img.getchannel(0), mode[0]
        if mode in _ID_MODES:
            return _ids_array(img)
        if mode in _COLOUR_MODES:
            rgb = np.asarray(img.convert("RGB"))
            if palette is None:
                grey = bool((rgb == rgb[..., :1]).all())
                hint = (" Its three channels are equal: if the grey values are the class ids, "
                        "re-save it as a single-channel (mode L) PNG." if grey else "")
                raise DataError(
                    f"{path}: found an {mode} image where a label map of class ids was expected; "
                    "this looks like a colour (RGB) label map; pass --palette colours.json "
                    f"mapping colours to class ids (data.palette).{hint}")
            return _colours_to_ids(rgb, palette, path)
        raise DataError(f"{path}: label maps must be single-channel integer images (PNG mode L, "
                        f"P, I;16 or I), found mode {mode}. Fix: re-save it as an 8- or 16-bit "
                        "greyscale PNG whose values are the class ids.")

    return _with_image(path, decode)


def _colours_to_ids(rgb: np.ndarray, palette: Palette, path: Path) -> np.ndarray:
    """Map an (H, W, 3) uint8 colour label map through ``palette`` to (H, W) int64 ids."""
    wide = rgb.astype(np.int64)
    packed = (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]   # one int per colour
    colours, inverse, counts = np.unique(packed.ravel(), return_inverse=True, return_counts=True)
    lookup = {(r << 16) | (g << 8) | b: i for (r, g, b), i in palette.items()}
    missing = [(int(c), int(n)) for c, n in zip(colours, counts, strict=True)
               if int(c) not in lookup]
    if missing:
        shown = ", ".join(f"{format_colour(((c >> 16) & 255, (c >> 8) & 255, c & 255))} "
                          f"on {n} pixel(s)" for c, n in missing[:5])
        more = f" and {len(missing) - 5} more colour(s)" if len(missing) > 5 else ""
        raise DataError(f"{path}: colour(s) not in the palette: {shown}{more}. Fix: add them to "
                        "the palette JSON with their class ids, or repaint those pixels.")
    ids = np.array([lookup[int(c)] for c in colours], dtype=np.int64)
    return ids[inverse].reshape(rgb.shape[:2])


def read_instance(path: str | Path) -> np.ndarray:
    """Read an instance map as (H, W) int64 ids: 8-bit, 16-bit (ids ≥ 32768 stay positive) or
    32-bit (mode ``I``). Cityscapes encoding: ids ≥ 1000 are ``class * 1000 + k``."""
    path = Path(path)

    def decode(img: Image.Image) -> np.ndarray:
        if img.mode in _ID_MODES:
            return _ids_array(img)
        raise DataError(f"{path}: instance maps must be single-channel integer images (PNG mode "
                        f"L, I;16 or I), found mode {img.mode}. Fix: re-save it as a 16-bit "
                        "greyscale PNG whose values are the instance ids.")

    return _with_image(path, decode)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB (greyscale, palette and RGBA are converted)."""

    def decode(img: Image.Image) -> np.ndarray:
        if img.mode.startswith("I;16"):
            # PIL clips 16-bit values to 255 when converting to RGB; keep the high byte instead.
            grey = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=2)
        return np.asarray(img.convert("RGB")).copy()

    return _with_image(path, decode)


def load_palette(path: str | Path) -> Palette:
    """Read a palette JSON mapping colours to class ids, in one of two formats.

    1. A mapping from hex colour to class id, for any ids (sparse ones such as 255 included)::

           {"#000000": 0, "#804080": 7, "#ffffff": 255}

    2. The ``classes.json`` format (the procedural generator writes it), where the position of a
       colour in the list is its class id; ``names`` is optional and ignored here::

           {"names": ["sky", "tree"], "colours": [[70, 130, 180], [107, 142, 35]]}

    Returns ``{(r, g, b): id}``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"palette {path}: file not found. Fix: give the path of a JSON file "
                        "mapping colours to class ids.")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"palette {path}: not valid JSON ({err}). Fix: correct the file; "
                        'expected {"#rrggbb": id, ...} or {"colours": [[r, g, b], ...]}.') from None
    palette: Palette = {}

    def add(colour: tuple[int, int, int], class_id: object, where: str) -> None:
        if isinstance(class_id, bool) or not isinstance(class_id, int) or class_id < 0:
            raise DataError(f"palette {path}: {where}: class id {class_id!r} is not a "
                            "non-negative integer. Fix: give each colour an integer id.")
        if colour in palette and palette[colour] != class_id:
            raise DataError(f"palette {path}: colour {format_colour(colour)} is given twice "
                            f"(ids {palette[colour]} and {class_id}). Fix: keep one.")
        palette[colour] = class_id

    if isinstance(raw, dict) and isinstance(raw.get("colours"), list):
        for class_id, value in enumerate(raw["colours"]):
            if (not isinstance(value, list) or len(value) != 3
                    or not all(isinstance(v, int) and 0 <= v <= 255 for v in value)):
                raise DataError(f"palette {path}: colours[{class_id}] is {value!r}, expected "
                                "[r, g, b] with integers 0..255.")
            add(tuple(value), class_id, f"colours[{class_id}]")
    elif isinstance(raw, dict) and raw:
        for key, class_id in raw.items():
            add(_parse_hex(key, path), class_id, f"key {key!r}")
    else:
        raise DataError(f"palette {path}: expected {{\"#rrggbb\": id, ...}} or "
                        f"{{\"colours\": [[r, g, b], ...]}}, found {str(raw)[:80]!r}.")
    return palette


def _parse_hex(key: str, path: Path) -> tuple[int, int, int]:
    text = key.strip()
    digits = text[1:] if text.startswith("#") else ""
    try:
        if len(digits) != 6:
            raise ValueError
        value = int(digits, 16)
    except ValueError:
        raise DataError(f"palette {path}: key {key!r} is not a colour; expected '#rrggbb' "
                        "(for example '#ff8000').") from None
    return (value >> 16) & 255, (value >> 8) & 255, value & 255
