"""Single-image sources of the GAN toolbox: image folders, class folders, attribute tables,
CelebA, unpaired A/B folders and IDX files, with a seeded semi-supervised split.

==================  ============================================================================
``image_folder``    images directly in the folder (unconditional); set explicitly, since a
                    plain folder of images may also be A|B pairs or sketches
``class_folders``   ``<class>/*.png`` (searched recursively, classes sorted by name, as
                    torchvision's ImageFolder), or a ``dataset.json`` beside the images:
                    ``{"labels": [["sub/file.png", 3], ...], "classes": ["cat", ...]}``
                    (paths relative to the folder; ``classes`` optional, else ``"0"``, ``"1"``...)
``attributes_csv``  ``attributes.csv``: a header ``file,attr1,attr2,...`` then one row per image
                    (path relative to the folder, numeric values: ±1, 0/1 or continuous)
``celeba``          the CelebA release: ``img_align_celeba/``, ``list_attr_celeba.txt`` (count,
                    the 40 names, then ``file v1 ... v40`` with ±1) and, for the splits,
                    ``list_eval_partition.txt`` (``file 0|1|2``: train, val, test); in the root
                    or in the release's ``Img/``, ``Anno/`` and ``Eval/``
``unpaired``        ``A/`` (synthetic images; optionally labelled like ``class_folders`` or
                    ``attributes_csv``) and ``B/`` (real images, unlabelled), paired at random
``idx``             MNIST-family IDX files (see :mod:`condsynth.data.idx`); class names from a
                    ``classes.json`` beside them, else EMNIST's mapping file, else the
                    Fashion-MNIST or KMNIST names when the folder's name says so, else digits
==================  ============================================================================

The folder sources may have split folders ``train/``, ``val/``, ``test/`` holding the layout
each; without them everything is ``train``.

Items (dicts) are deterministic functions of ``(seed, epoch, index)``, as for
:class:`~condsynth.data.dataset.PairedDataset`:

- ``"image"``: ``(C, H, W)`` float32 in [-1, 1], ``C = data.channels`` (1 grey, 3 RGB);
- ``"path"``: the image file (IDX items: ``<images file>#<index>``);
- ``"class"``: 0-d int64, for class data (-1 = unlabelled, see ``data.labeled_per_class``);
- ``"attributes"``: ``(A,)`` float32, for attribute tables, values as stored;
- ``"labeled_image"``, ``"labeled_class"``: with ``data.labeled_batch`` in training, a
  labelled item beside every item (see :meth:`SourceDataset.labeled_partner`);
- ``"source"``: ``(1, H, W)`` the image's XDoG line drawing when ``data.line_extraction`` asks
  for it (not for unpaired sources, whose ``"source"`` is the A image);
- unpaired: ``"source"`` is the A image, ``"image"`` a B image drawn from the item's random
  generator, ``"path"`` the A file, plus A's ``"class"`` or ``"attributes"`` when it has them.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from condsynth.config import DataConfig
from condsynth.data.dataset import image_to_tensor
from condsynth.data.idx import idx_class_names, idx_set, read_idx_set
from condsynth.data.io import read_image
from condsynth.data.layouts import (
    ATTRIBUTES_CSV,
    LABELS_JSON,
    SOURCE_LAYOUTS,
    celeba_file,
    list_images,
    read_classes,
    resolve_layout,
    split_bases,
)
from condsynth.data.sketches import XDoGParams, image_sketch, random_xdog_params, sketch_to_tensor
from condsynth.data.transforms import apply_image, draw_params
from condsynth.errors import ConfigError, DataError

__all__ = ["Source", "SourceInfo", "SourceDataset", "is_source_layout", "load_source",
           "describe_source", "open_dataset", "semi_supervised_split", "to_channels"]

Kind = Literal["none", "class", "vector", "unpaired"]
_KINDS: dict[str, Kind] = {"image_folder": "none", "class_folders": "class", "idx": "class",
                           "attributes_csv": "vector", "celeba": "vector", "unpaired": "unpaired"}
_CELEBA_SPLITS = {"train": 0, "val": 1, "test": 2}


def is_source_layout(layout: str) -> bool:
    """Whether ``layout`` is read by this module (single images), not as pairs."""
    return layout in SOURCE_LAYOUTS


@dataclass
class Source:
    """What one split of a source holds, read once: item paths and their labels.

    ``pixels`` holds the images in memory when the files do (IDX); otherwise ``paths`` are
    the image files, read item by item.
    """

    layout: str
    paths: list[str]
    classes: np.ndarray | None = None          # (N,) int64, -1 = unlabelled
    class_names: list[str] = field(default_factory=list)
    attributes: np.ndarray | None = None       # (N, A) float32
    attribute_names: list[str] = field(default_factory=list)
    pixels: np.ndarray | None = None           # (N, H, W) uint8
    real: Source | None = None                 # unpaired: the B images

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        """Item ``index``'s image: (H, W) uint8 grey from memory, (H, W, 3) uint8 from files."""
        if self.pixels is not None:
            return self.pixels[index]
        return read_image(self.paths[index])

    def subset(self, keep: slice) -> Source:
        """The items ``keep`` (``data.max_items``), labels and images alike."""
        return replace(self, paths=self.paths[keep],
                       classes=None if self.classes is None else self.classes[keep],
                       attributes=None if self.attributes is None else self.attributes[keep],
                       pixels=None if self.pixels is None else self.pixels[keep])


@dataclass
class SourceInfo:
    """What a source gives a method: the condition kind and its sizes, and the counts."""

    layout: str
    kind: Kind                                  # none | class | vector | unpaired
    num_classes: int | None                     # class data (unpaired: A's classes), else None
    class_names: list[str]
    attribute_names: list[str]                  # vector data (unpaired: A's attributes)
    channels: int                               # of "image" (and of "source" when unpaired)
    count: int                                  # items in the split
    counts_per_class: list[int]                 # items per class id (labelled or not)
    labeled_count: int | None                   # labelled items under data.labeled_per_class
    real_count: int | None = None               # unpaired: B images


# --------------------------------------------------------------------------- public functions


def load_source(data: DataConfig, phase: str = "train") -> Source:
    """Read what one split of a source holds (not the images, except IDX arrays).

    ``data.attributes`` narrows attribute tables to the named columns; ``data.max_items`` keeps
    the first items. Raises :class:`DataError` for missing or malformed files.
    """
    if not data.root:
        raise ConfigError("data.root is empty. Fix: give the dataset folder (--data DIR).")
    root = Path(data.root)
    layout = resolve_layout(root, data.layout, phase)
    if not is_source_layout(layout):
        raise DataError(f"{root}: the {layout} layout holds pairs, not single images. Fix: read "
                        "it with condsynth.data.dataset.PairedDataset, or set data.layout to "
                        f"one of {', '.join(SOURCE_LAYOUTS)}.")
    if layout == "idx":
        source = _idx_source(root, phase, data.idx_prefix)
    elif layout == "celeba":
        source = _celeba_source(root, phase)
    elif layout == "unpaired":
        base = _split_folder(root, phase)
        source = _folder_source(_unpaired_kind(base / "A"), base / "A",
                                [b / "A" for b in split_bases(root)])
        source.layout = "unpaired"
        source.real = _folder_source("image_folder", base / "B", [])
    else:
        source = _folder_source(layout, _split_folder(root, phase), split_bases(root))
    if source.attributes is not None and data.attributes:
        source.attribute_names, source.attributes = _select_attributes(
            source.attribute_names, source.attributes, data.attributes, str(root))
    if data.max_items is not None:
        source = source.subset(slice(data.max_items))
    if not len(source):
        raise DataError(f"{root}: no {layout} items for phase '{phase}'. Fix: add images, or "
                        "check data.root and the phase.")
    return source


def describe_source(data: DataConfig, phase: str = "train") -> SourceInfo:
    """The condition kind, classes, attributes and counts of a source's split, for building
    the networks (class count, attribute count, channels) and for reports."""
    _check_channels(data)
    source = load_source(data, phase)
    counts: list[int] = []
    if source.classes is not None:
        counts = np.bincount(source.classes[source.classes >= 0],
                             minlength=len(source.class_names)).tolist()
    labeled = None
    if data.labeled_per_class is not None and phase == "train":
        labeled = len(semi_supervised_split(source, data.labeled_per_class, 0, data.root))
    return SourceInfo(
        layout=source.layout, kind=_KINDS[source.layout],
        num_classes=len(source.class_names) if source.classes is not None else None,
        class_names=list(source.class_names), attribute_names=list(source.attribute_names),
        channels=data.channels, count=len(source), counts_per_class=counts,
        labeled_count=labeled, real_count=None if source.real is None else len(source.real))


def open_dataset(data: DataConfig, phase: str, train: bool, seed: int,
                 size_multiple: int = 1) -> SourceDataset:
    """The torch Dataset of a source's split (see the module docstring for the items).

    Args:
        data: where the source is, the channels, preprocessing and the semi-supervised split.
        phase: which split to read (``train``, ``val``, ``test``).
        train: random crops and flips; False gives centre crops and no flips.
        seed: with the epoch and the index, fixes every random draw; it also chooses the
            labelled items of ``data.labeled_per_class`` (applied to the ``train`` phase only,
            so evaluation keeps every label).
        size_multiple: output H and W are rounded to a multiple of this.
    """
    _check_channels(data)
    source = load_source(data, phase)
    labeled = None
    if data.labeled_per_class is not None and phase == "train":
        labeled = semi_supervised_split(source, data.labeled_per_class, seed, data.root)
    return SourceDataset(source, data, train=train, seed=seed, size_multiple=size_multiple,
                         labeled_indices=labeled)


def semi_supervised_split(source: Source, per_class: int, seed: int,
                          where: str = "") -> np.ndarray:
    """The sorted indices of ``per_class`` items of every class, drawn by a generator seeded
    with ``seed`` alone (the same labels in every epoch and every worker).

    Raises:
        ConfigError: the source has no classes, or ``per_class`` is not positive.
        DataError: a class has fewer than ``per_class`` items.
    """
    if source.classes is None:
        raise ConfigError(f"{where}: data.labeled_per_class is set but the {source.layout} "
                          "source has no class labels. Fix: unset data.labeled_per_class, or use "
                          "class data (class_folders, idx, or labelled A/ images).")
    if per_class < 1:
        raise ConfigError(f"data.labeled_per_class is {per_class}; expected at least 1 (or "
                          "null to keep every label).")
    counts = np.bincount(source.classes[source.classes >= 0], minlength=len(source.class_names))
    short = [(name, int(counts[i])) for i, name in enumerate(source.class_names)
             if counts[i] < per_class]
    if short:
        shown = ", ".join(f"{name!r} has {n}" for name, n in short[:8])
        fewest = min(n for _, n in short)
        fix = (f"lower data.labeled_per_class to at most {fewest}, or add items to those "
               "classes" if fewest else "add items to the empty class(es) or remove them")
        raise DataError(f"{where}: data.labeled_per_class is {per_class} but {len(short)} "
                        f"class(es) have fewer items: {shown}. Fix: {fix}.")
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(source.classes == c), per_class, replace=False)
              for c in range(len(source.class_names))]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """An (H, W) or (H, W, 3) uint8 image as (H, W) grey (``channels`` 1) or (H, W, 3) RGB."""
    if channels == 1:
        # PIL's "L" uses the ITU-R 601 luma weights, as torchvision's Grayscale does.
        return image if image.ndim == 2 else np.asarray(Image.fromarray(image).convert("L"))
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


class SourceDataset(torch.utils.data.Dataset):
    """Items of a :class:`Source`, transformed for training or evaluation.

    Args:
        source: the split's items and labels (see :func:`load_source`).
        data: channels, preprocessing (``preprocess: fixed`` is a plain resize to
            ``crop_size``), flips.
        train: random crops and flips; False gives centre crops and no flips.
        seed: with the epoch and the index, fixes every random draw.
        size_multiple: output H and W are rounded to a multiple of this.
        labeled_indices: the items that keep their class; every other item's class is -1.

    Attributes:
        labeled_indices: (L,) int64, sorted: the items whose ``"class"`` is known (every item
            of class data without a split; None without classes), for drawing labelled
            batches apart, e.g. ``torch.utils.data.Subset(dataset, dataset.labeled_indices)``.
        classes: (N,) int64 class of every item as the items give it (-1 = unlabelled).
    """

    def __init__(self, source: Source, data: DataConfig, train: bool = True, seed: int = 0,
                 size_multiple: int = 1, labeled_indices: np.ndarray | None = None) -> None:
        self.source = source
        self.data = data
        self.train = train
        self.seed = seed
        self.size_multiple = size_multiple
        self.epoch = 0
        self._partner_epoch: int | None = None        # the epoch of _partner_order
        self._partner_order = np.empty(0, dtype=np.int64)
        self.classes = source.classes
        self.labeled_indices = (None if source.classes is None
                                else np.arange(len(source), dtype=np.int64))
        if labeled_indices is not None:
            self.labeled_indices = np.asarray(labeled_indices, dtype=np.int64)
            self.classes = np.full(len(source), -1, dtype=np.int64)
            self.classes[self.labeled_indices] = source.classes[self.labeled_indices]

    def set_epoch(self, epoch: int) -> None:
        """Draw fresh crops, flips and B partners for a new epoch (call before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.source):
            raise IndexError(f"item {index} of a dataset of {len(self.source)}")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        source = self.source
        image = self._image(source, index, rng)
        item: dict[str, Any] = {"image": image, "path": source.paths[index]}
        if source.real is not None:
            # The B partner is drawn after A's transform, from the same item generator.
            partner = int(rng.integers(len(source.real)))
            item["source"] = image
            item["image"] = self._image(source.real, partner, rng)
        if self.classes is not None:
            item["class"] = torch.tensor(int(self.classes[index]), dtype=torch.int64)
        if source.attributes is not None:
            item["attributes"] = torch.from_numpy(source.attributes[index].copy())
        if self.data.labeled_batch and self.train and self.labeled_indices is not None:
            partner = self.labeled_partner(index)
            item["labeled_image"] = self._image(source, partner,
                                                np.random.default_rng([self.seed, self.epoch,
                                                                       index, 1]))
            item["labeled_class"] = torch.tensor(int(self.classes[partner]), dtype=torch.int64)
        if self.data.line_extraction != "none" and source.real is None:
            item["source"] = self._sketch(item["image"], rng)
        return item

    def labeled_partner(self, index: int) -> int:
        """The labelled item that item ``index`` carries in this epoch (``data.labeled_batch``):
        ``labeled[perm[index % L]]`` with a permutation of the L labelled items drawn from
        (seed, epoch), so that a pass over the items visits every labelled item equally often,
        as the official semi-supervised code tiles permutations of its labelled set."""
        if self._partner_epoch != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch, 7])
            self._partner_order = rng.permutation(len(self.labeled_indices))
            self._partner_epoch = self.epoch
        return int(self.labeled_indices[self._partner_order[index % len(self.labeled_indices)]])

    def _sketch(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """The XDoG line drawing (1, H, W) of an item's transformed image (``xdog_random``:
        parameters drawn per training item, after every other draw of the item)."""
        random = self.train and self.data.line_extraction == "xdog_random"
        lines = random_xdog_params(rng) if random else XDoGParams()
        pixels = np.round((image.numpy().transpose(1, 2, 0) + 1.0) * 127.5).astype(np.uint8)
        return sketch_to_tensor(image_sketch(pixels[..., 0] if pixels.shape[2] == 1
                                             else pixels, lines))

    def _image(self, source: Source, index: int, rng: np.random.Generator) -> torch.Tensor:
        image = to_channels(source.read(index), self.data.channels)
        params = draw_params(image.shape[:2], self.data, self.train, rng, self.size_multiple,
                             source.paths[index])
        image = apply_image(image, params)
        return image_to_tensor(image[..., None] if image.ndim == 2 else image)


# --------------------------------------------------------------------------- one reader per layout


def _check_channels(data: DataConfig) -> None:
    if data.channels not in (1, 3):
        raise ConfigError(f"data.channels is {data.channels}; expected 1 (greyscale) or 3 (RGB).")


def _split_folder(root: Path, phase: str) -> Path:
    """The folder of ``phase``: ``root/phase`` when the source has split folders, else root
    (which is all ``train``)."""
    bases = split_bases(root)
    if bases == [root]:
        if phase != "train":
            raise DataError(f"{root}: has no split folders (train/, val/, test/), so everything "
                            f"is train and there is no '{phase}' split. Fix: put the images of "
                            f"each split in {root}/train and {root}/{phase}, or use phase train.")
        return root
    folder = root / phase
    if folder not in bases:
        raise DataError(f"{root}: no '{phase}' split folder (found "
                        f"{', '.join(b.name for b in bases)}). Fix: add {folder}, or choose one "
                        "of those phases.")
    return folder


def _unpaired_kind(folder: Path) -> str:
    """How the A images of an unpaired source are labelled: like which single-image layout."""
    if not folder.is_dir():
        raise DataError(f"{folder}: the A (synthetic images) folder is missing. Fix: put the "
                        "images to refine in A/ and the real ones in B/.")
    if (folder / ATTRIBUTES_CSV).is_file():
        return "attributes_csv"
    if (folder / LABELS_JSON).is_file() or (
            not list_images(folder) and any(d.is_dir() for d in folder.iterdir())):
        return "class_folders"
    return "image_folder"


def _folder_source(layout: str, folder: Path, siblings: list[Path]) -> Source:
    """An image_folder, class_folders or attributes_csv folder. ``siblings`` are the same
    source's folders of every split: class names are their union, so that a class id means
    the same class in every split."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found. Fix: check data.root and the phase.")
    if layout == "attributes_csv":
        return _csv_source(folder / ATTRIBUTES_CSV)
    if layout == "class_folders" and (folder / LABELS_JSON).is_file():
        return _json_source(folder / LABELS_JSON)
    if layout == "class_folders":
        names = sorted({d.name for s in siblings + [folder] if s.is_dir()
                        for d in s.iterdir() if d.is_dir() and not d.name.startswith(".")})
        paths, classes = [], []
        for class_id, name in enumerate(names):
            found = list_images(folder / name, recursive=True)
            paths += [str(p) for p in found]
            classes += [class_id] * len(found)
        if not names:
            raise DataError(f"{folder}: no class folders found (expected one sub-folder of "
                            "images per class, or a dataset.json). Fix: arrange the images so, "
                            "or set data.layout=image_folder.")
        return Source(layout, paths, np.array(classes, dtype=np.int64), names)
    images = list_images(folder)
    if not images:
        raise DataError(f"{folder}: no images found directly in the folder. Fix: check "
                        "data.root and the phase (sub-folders are read only as class_folders).")
    return Source(layout, [str(p) for p in images])


def _json_source(path: Path) -> Source:
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}). Fix: correct the file.") from None
    expected = ('expected {"labels": [["file.png", class_id], ...]} with integer class ids '
                '(optionally "classes": ["name", ...])')
    labels = raw.get("labels") if isinstance(raw, dict) else None
    if not isinstance(labels, list) or not labels:
        raise DataError(f"{path}: {expected}, found {str(raw)[:80]!r}. Fix: correct the file.")
    paths, classes = [], []
    for i, entry in enumerate(labels):
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                or isinstance(entry[1], bool) or not isinstance(entry[1], int) or entry[1] < 0):
            raise DataError(f"{path}: labels[{i}] is {entry!r}; {expected}. Fix: correct it "
                            "(vector labels belong in an attributes.csv).")
        paths.append(str(path.parent / entry[0]))
        classes.append(entry[1])
    names = raw.get("classes")
    if names is None:
        names = [str(i) for i in range(max(classes) + 1)]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: \"classes\" must be a list of names, found {names!r}.")
    if max(classes) >= len(names):
        raise DataError(f"{path}: class id {max(classes)} but only {len(names)} class names. "
                        "Fix: add the missing names to \"classes\".")
    return Source("class_folders", paths, np.array(classes, dtype=np.int64), list(names))


def _csv_source(path: Path) -> Source:
    if not path.is_file():
        raise DataError(f"{path}: attribute table not found. Fix: write it (a header "
                        "file,attr1,attr2,... then one row per image).")
    # utf-8-sig: spreadsheets often start their CSV exports with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row and any(c.strip() for c in row)]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise DataError(f"{path}: expected a header row 'file,attr1,attr2,...' and one row per "
                        f"image, found {len(rows)} row(s). Fix: complete the table.")
    names = [n.strip() for n in rows[0][1:]]
    paths, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(names) + 1:
            raise DataError(f"{path}, line {line}: {len(row)} column(s), the header has "
                            f"{len(names) + 1}. Fix: give every image one value per attribute.")
        try:
            values.append([float(v) for v in row[1:]])
        except ValueError:
            raise DataError(f"{path}, line {line}: non-numeric value in {row[1:]}. Fix: use "
                            "numbers (±1, 0/1 or continuous values).") from None
        paths.append(str(path.parent / row[0].strip()))
    return Source("attributes_csv", paths, attributes=np.array(values, dtype=np.float32),
                  attribute_names=names)


def _celeba_source(root: Path, phase: str) -> Source:
    table = celeba_file(root, "list_attr_celeba.txt")
    images = celeba_file(root, "img_align_celeba")
    if table is None or images is None or not images.is_dir():
        raise DataError(f"{root}: expected the CelebA release: img_align_celeba/ and "
                        "list_attr_celeba.txt (in the folder or in Img/ and Anno/). Fix: unpack "
                        "them there.")
    lines = [line for line in table.read_text().splitlines() if line.strip()]
    if len(lines) < 3 or not lines[0].strip().isdigit():
        raise DataError(f"{table}: expected the count on line 1, the attribute names on line 2, "
                        "then 'file v1 ... vN' rows. Fix: use the file of the release.")
    names = lines[1].split()
    rows = [line.split() for line in lines[2:]]
    bad = next((i for i, r in enumerate(rows) if len(r) != len(names) + 1), None)
    if bad is not None:
        raise DataError(f"{table}, line {bad + 3}: {len(rows[bad])} fields, expected a file name "
                        f"and {len(names)} values. Fix: use the file of the release.")
    if int(lines[0]) != len(rows):
        raise DataError(f"{table}: line 1 announces {int(lines[0])} images but {len(rows)} rows "
                        "follow; the file is probably truncated. Fix: download it again.")
    try:
        values = np.array([r[1:] for r in rows]).astype(np.float32)
    except ValueError:
        raise DataError(f"{table}: non-numeric attribute values. Fix: use the file of the "
                        "release (values -1 and 1).") from None
    files = [r[0] for r in rows]
    keep = np.ones(len(files), dtype=bool)
    partition = celeba_file(root, "list_eval_partition.txt")
    if partition is None and phase != "train":
        raise DataError(f"{root}: no list_eval_partition.txt, so everything is train and there "
                        f"is no '{phase}' split. Fix: add the file of the release, or use phase "
                        "train.")
    if partition is not None:
        if phase not in _CELEBA_SPLITS:
            raise DataError(f"{partition}: CelebA has the phases train, val and test, not "
                            f"'{phase}'.")
        split = {}
        for line in partition.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] in ("0", "1", "2"):
                split[parts[0]] = int(parts[1])
        missing = [f for f in files if f not in split]
        if missing:
            raise DataError(f"{partition}: no split for {len(missing)} image(s) of {table}, e.g. "
                            f"{missing[0]}. Fix: use the files of one release.")
        keep = np.array([split[f] == _CELEBA_SPLITS[phase] for f in files])
    return Source("celeba", [str(images / f) for f, k in zip(files, keep, strict=True) if k],
                  attributes=values[keep], attribute_names=names)


def _idx_source(root: Path, phase: str, prefix: str | None) -> Source:
    found = idx_set(root, phase, prefix)
    pixels, labels = read_idx_set(found)
    classes = read_classes(root)
    count = int(labels.max()) + 1 if len(labels) else 0
    names = classes[0] if classes is not None else idx_class_names(found, count)
    if count > len(names):
        raise DataError(f"{found.labels}: label {count - 1} but only {len(names)} class names "
                        f"({root / 'classes.json'}). Fix: name every class.")
    if labels.min(initial=0) < 0:
        raise DataError(f"{found.labels}: negative labels. Fix: use the labels file of the "
                        "release.")
    paths = [f"{found.images}#{i}" for i in range(len(labels))]
    return Source("idx", paths, labels, names, pixels=pixels)


def _select_attributes(names: list[str], values: np.ndarray, wanted: list[str],
                       where: str) -> tuple[list[str], np.ndarray]:
    """The columns ``wanted`` of an attribute table, in that order."""
    columns = []
    for name in wanted:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"data.attributes: '{name}' is not an attribute of {where}; "
                              f"{hint}Fix: use names among: {', '.join(names)}.")
        columns.append(names.index(name))
    duplicates = [n for n, k in Counter(wanted).items() if k > 1]
    if duplicates:
        raise ConfigError(f"data.attributes names {', '.join(duplicates)} more than once. Fix: "
                          "name each attribute once.")
    return list(wanted), np.ascontiguousarray(values[:, columns])
