"""Pictures and pages people look at: colourized label maps, PNG writing, ``index.html`` tables."""

from __future__ import annotations

import colorsys
import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from condsynth.config import ConditionConfig
from condsynth.data.dataset import tensor_to_image
from condsynth.errors import CondsynthError


def default_colours(num_classes: int) -> list[list[int]]:
    """Distinct colours for classes without a palette: hues spread by the golden ratio."""
    colours = []
    for i in range(num_classes):
        hue = (i * 0.618033988749895) % 1.0
        lightness = 0.45 + 0.2 * ((i // 7) % 2)
        r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.75)
        colours.append([int(r * 255), int(g * 255), int(b * 255)])
    return colours


def class_colours(spec: ConditionConfig) -> list[list[int]]:
    """The label config's colours, completed with defaults where it has fewer than classes."""
    n = spec.num_classes or 0
    given = [list(c) for c in spec.class_colours[:n]]
    return given + default_colours(n)[len(given):]


def colourize(label: np.ndarray, colours: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8; ids without a colour (dont-care) are black."""
    table = np.zeros((256 if label.max(initial=0) < 256 else int(label.max()) + 1, 3), np.uint8)
    table[: len(colours)] = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    return table[np.clip(label, 0, len(table) - 1)]


def condition_picture(item: dict, spec: ConditionConfig) -> np.ndarray:
    """What a person sees of a spatial condition: the coloured label map, or the source image."""
    if "label" in item and spec.kind == "label_map":
        label = item["label"]
        label = label.cpu().numpy() if isinstance(label, Tensor) else np.asarray(label)
        return colourize(label, class_colours(spec))
    return tensor_to_image(item["source"])


def condition_text(item: dict, spec: ConditionConfig) -> str:
    """A global condition in words: the class name, the attribute values, or "noise"."""
    if spec.kind == "class" and "class" in item:
        cls = int(item["class"])
        names = spec.class_names
        return names[cls] if 0 <= cls < len(names) else f"class {cls}"
    if spec.kind == "vector" and "attributes" in item:
        values = [float(v) for v in item["attributes"]]
        return ", ".join(f"{n}={v:g}" for n, v in zip(spec.attributes, values, strict=False))
    return "noise"


def save_png(array: np.ndarray, path: str | Path) -> None:
    """Write an image atomically (a reader never sees half a PNG)."""
    path = Path(path)
    if path.is_dir():
        raise CondsynthError(f"cannot write a picture to {path}: it is a folder. Fix: give a "
                             f"file name, such as {path / 'picture.png'}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(array).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)           # left only when writing failed


def write_table_page(path: str | Path, title: str, headers: Sequence[str],
                     rows: Sequence[Sequence[str]], notes: Sequence[str] = (),
                     refresh_seconds: int | None = None, image_scale: int | None = None) -> None:
    """An ``index.html`` with one table row of images per item; cells are paths relative to the
    page (images) or plain text (anything not ending in .png/.jpg). Images show 256 pixels
    wide, or ``image_scale`` times their own size (grids of different widths side by side)."""
    refresh = (f'<meta http-equiv="refresh" content="{refresh_seconds}">'
               if refresh_seconds else "")
    folder = Path(path).parent

    def cell(value: str) -> str:
        if value.lower().endswith((".png", ".jpg", ".jpeg")):
            src = html.escape(value, quote=True)
            size = ""
            if image_scale is not None and (folder / value).is_file():
                with Image.open(folder / value) as image:
                    size = f' style="width: {image.width * image_scale}px"'
            return f'<td><a href="{src}"><img src="{src}" alt="{src}"{size}></a></td>'
        return f"<td>{html.escape(value)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    note_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px; text-align: center; }}
img {{ width: 256px; image-rendering: pixelated; border: 1px solid #ccc; }}
</style></head>
<body><h1>{html.escape(title)}</h1>{note_html}
<table><tr>{head}</tr>
{body}
</table></body></html>
"""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
