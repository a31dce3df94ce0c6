"""Builders of tiny datasets of every layout, written to ``tmp_path`` with PIL.

Images are a pure function of their label map (``COLOURS[label]``), so a test can tell whether
label and image are still aligned after a transform by looking at the colours.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

# One distinct colour per class id (0..7), far enough apart to tell apart after BICUBIC resizing.
COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
                    [255, 0, 255], [0, 255, 255], [255, 255, 255]], dtype=np.uint8)
HEIGHT, WIDTH = 24, 32
NUM_CLASSES = 5


def label_map(seed: int, size_hw: tuple[int, int] = (HEIGHT, WIDTH), num_classes: int = NUM_CLASSES,
              block: int = 4) -> np.ndarray:
    """A blocky (H, W) uint8 label map: blocks of ``block`` pixels keep borders few."""
    rng = np.random.default_rng(seed)
    height, width = size_hw
    coarse = rng.integers(0, num_classes, (-(-height // block), -(-width // block)))
    blocks = np.kron(coarse, np.ones((block, block), dtype=np.int64))
    return blocks[:height, :width].astype(np.uint8)


def colour_image(label: np.ndarray) -> np.ndarray:
    """The (H, W, 3) uint8 picture of a label map."""
    return COLOURS[label % len(COLOURS)]


def instance_map(label: np.ndarray) -> np.ndarray:
    """A Cityscapes-style (H, W) uint16 instance map: class * 1000 + k for each block column."""
    k = (np.arange(label.shape[1]) // 8)[None, :]
    return (label.astype(np.int64) * 1000 + k).astype(np.uint16)


def write(path: Path, arr: np.ndarray, **save_args) -> Path:
    """Save an array with PIL, creating the folders; uint16 becomes a 16-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **save_args)
    return path


def write_idx(path: Path, values: np.ndarray, compress: bool = False) -> Path:
    """Save an array in the IDX format (big-endian header and values), gzipped if asked."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    big = values.astype(values.dtype.newbyteorder(">"))
    raw = (bytes([0, 0, codes[values.dtype], values.ndim])
           + np.array(values.shape, ">u4").tobytes() + big.tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def flat_image(class_id: int, size_hw: tuple[int, int] = (HEIGHT, WIDTH)) -> np.ndarray:
    """An (H, W, 3) image of one colour, ``COLOURS[class_id]``, with a black left column so
    that a flip shows."""
    image = np.broadcast_to(COLOURS[class_id % len(COLOURS)], (*size_hw, 3)).copy()
    image[:, 0] = 0
    return image


class Builder:
    """Writes tiny datasets under one folder; each method returns the dataset root."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def _pairs(self, count: int, size_hw: tuple[int, int]):
        for i in range(count):
            label = label_map(i, size_hw)
            yield i, label, colour_image(label), instance_map(label)

    def pix2pixhd(self, name: str = "p2phd", count: int = 3, phases=("train",),
                  instances: bool = True, size_hw=(HEIGHT, WIDTH)) -> Path:
        root = self.tmp / name
        for phase in phases:
            for i, label, image, inst in self._pairs(count, size_hw):
                write(root / f"{phase}_label" / f"img{i}.png", label)
                write(root / f"{phase}_img" / f"img{i}.png", image)
                if instances:
                    write(root / f"{phase}_inst" / f"img{i}.png", inst)
        return root

    def spade_custom(self, name: str = "custom", count: int = 3, phase: str | None = None,
                     instances: bool = False) -> Path:
        root = self.tmp / name
        base = root / phase if phase else root
        for i, label, image, inst in self._pairs(count, (HEIGHT, WIDTH)):
            write(base / "label_dir" / f"s{i}.png", label)
            write(base / "image_dir" / f"s{i}.jpg", image, quality=95)
            if instances:
                write(base / "instance_dir" / f"s{i}.png", inst)
        return root

    def cityscapes(self, name: str = "cityscapes", count: int = 3, split: str = "train") -> Path:
        root = self.tmp / name
        for i, label, image, inst in self._pairs(count, (HEIGHT, WIDTH)):
            city = "aachen" if i % 2 == 0 else "bremen"
            prefix = f"{city}_{i:06d}_000019"
            gt = root / "gtFine" / split / city
            write(gt / f"{prefix}_gtFine_labelIds.png", label)
            write(gt / f"{prefix}_gtFine_instanceIds.png", inst)
            write(gt / f"{prefix}_gtFine_color.png", image)   # present in the release; ignored
            write(root / "leftImg8bit" / split / city / f"{prefix}_leftImg8bit.png", image)
        return root

    def ade20k(self, name: str = "ade", count: int = 3, nested: bool = True) -> Path:
        root = self.tmp / name
        base = root / "ADEChallengeData2016" if nested else root
        for split in ("training", "validation"):
            for i, label, image, _ in self._pairs(count, (HEIGHT, WIDTH)):
                stem = f"ADE_{split[:5]}_{i:08d}"
                write(base / "annotations" / split / f"{stem}.png", label)
                write(base / "images" / split / f"{stem}.jpg", image, quality=95)
        return root

    def coco_stuff(self, name: str = "coco", count: int = 3) -> Path:
        root = self.tmp / name
        for split in ("train", "val"):
            for i, label, image, inst in self._pairs(count, (HEIGHT, WIDTH)):
                label = label.copy()
                label[0, 0] = 255                     # unlabeled, as in COCO-Stuff
                write(root / f"{split}_label" / f"{i:012d}.png", label)
                write(root / f"{split}_img" / f"{i:012d}.jpg", image, quality=95)
                write(root / f"{split}_inst" / f"{i:012d}.png", inst)
        return root

    def aligned(self, name: str = "facades", count: int = 2, phase: str | None = "train",
                side: int = 16) -> Path:
        """A|B images: the left half is a flat colour (A), the right half another (B)."""
        root = self.tmp / name
        folder = root / phase if phase else root
        for i in range(count):
            both = np.zeros((side, 2 * side, 3), np.uint8)
            both[:, :side] = COLOURS[1]               # A: red
            both[:, side:] = COLOURS[3]               # B: blue
            write(folder / f"{i}.png", both)
        return root

    def sketch(self, name: str = "sketches", count: int = 3) -> Path:
        root = self.tmp / name
        for i in range(count):
            sub = root / ("a" if i % 2 else "b")
            write(sub / f"{i}.png", colour_image(label_map(i, (20, 20))))
        return root

    # ----------------------------------------------------------------- single-image sources

    def image_folder(self, name: str = "faces", count: int = 3) -> Path:
        root = self.tmp / name
        for i in range(count):
            write(root / f"{i}.png", flat_image(i + 1))
        return root

    def class_folders(self, name: str = "classes", counts=(2, 3, 1),
                      phases: tuple[str, ...] | None = None) -> Path:
        """Class ``k`` is folder ``c{k}`` with ``counts[k]`` images of colour ``k + 1``; with
        ``phases``, every split folder holds the classes."""
        root = self.tmp / name
        for base in [root / p for p in phases] if phases else [root]:
            for k, count in enumerate(counts):
                for i in range(count):
                    write(base / f"c{k}" / f"{i}.png", flat_image(k + 1))
        return root

    def attributes_csv(self, name: str = "attrs", rows=None) -> Path:
        """Images ``0.png``... with attributes ``smile`` (±1), ``glasses`` (0/1), ``age``."""
        root = self.tmp / name
        rows = rows or [(1, 0, 0.25), (-1, 1, 0.5), (1, 1, 0.75)]
        lines = ["file,smile,glasses,age"]
        for i, values in enumerate(rows):
            write(root / f"{i}.png", flat_image(i + 1))
            lines.append(",".join([f"{i}.png", *map(str, values)]))
        (root / "attributes.csv").write_text("\n".join(lines) + "\n")
        return root

    def celeba(self, name: str = "celeba", splits=(0, 0, 0, 1, 2, 2),
               names=("Smiling", "Eyeglasses", "Male")) -> Path:
        """A tiny CelebA release: image ``i`` has attribute ``j`` +1 when ``(i + j) % 2 == 0``."""
        root = self.tmp / name
        files = [f"{i + 1:06d}.jpg" for i in range(len(splits))]
        rows = [str(len(files)), " ".join(names)]
        for i, file in enumerate(files):
            write(root / "img_align_celeba" / file, flat_image(i + 1), quality=95)
            values = [" 1" if (i + j) % 2 == 0 else "-1" for j in range(len(names))]
            rows.append(f"{file} " + " ".join(values))
        (root / "list_attr_celeba.txt").write_text("\n".join(rows) + "\n")
        (root / "list_eval_partition.txt").write_text(
            "".join(f"{f} {s}\n" for f, s in zip(files, splits, strict=True)))
        return root

    def unpaired(self, name: str = "refine", a_counts=(2, 2), b_count: int = 5) -> Path:
        """``A/c<k>/`` class folders (colour ``k + 1``) and ``B/`` flat images (colour 7)."""
        root = self.tmp / name
        self.class_folders(f"{name}/A", a_counts)
        for i in range(b_count):
            write(root / "B" / f"real{i}.png", flat_image(7))
        return root

    def idx(self, name: str = "mnist", count: int = 12, prefix: str = "", compress: bool = True,
            size_hw: tuple[int, int] = (6, 4), num_classes: int = 3) -> Path:
        """Train and test IDX files: image ``i`` is :func:`idx_image` (its orientation shows;
        EMNIST files store it transposed, as the release does), label ``i % num_classes``."""
        root = self.tmp / name
        start = f"{prefix}-" if prefix else ""
        suffix = ".gz" if compress else ""
        for split, n in (("train", count), ("test" if prefix else "t10k", count // 2)):
            images = np.stack([idx_image(i, size_hw) for i in range(n)])
            if prefix.startswith("emnist"):
                images = images.transpose(0, 2, 1)
            labels = (np.arange(n) % num_classes).astype(np.uint8)
            write_idx(root / f"{start}{split}-images-idx3-ubyte{suffix}", images, compress)
            write_idx(root / f"{start}{split}-labels-idx1-ubyte{suffix}", labels, compress)
        return root


def idx_image(i: int, size_hw: tuple[int, int] = (6, 4)) -> np.ndarray:
    """The (H, W) uint8 image ``i`` of :meth:`Builder.idx`, as the reader must return it."""
    height, width = size_hw
    return ((np.arange(height * width).reshape(height, width) * 10 + i) % 256).astype(np.uint8)
