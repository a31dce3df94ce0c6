"""Dataset layouts: where the label maps, instance maps and images of each pair live.

Supported layouts (``DataConfig.layout``):

==============  ==============================================================================
``pix2pixhd``   ``{phase}_label/``, ``{phase}_img/``, optional ``{phase}_inst/``; paired by stem
``spade_custom`` ``label_dir/``, ``image_dir/``, optional ``instance_dir/`` under the root (or under
                ``root/{phase}``); paired by stem
``cityscapes``  ``gtFine/{phase}/<city>/*_gtFine_labelIds.png`` (+ ``*_gtFine_instanceIds.png``)
                and ``leftImg8bit/{phase}/<city>/*_leftImg8bit.png``; paired by
                ``<city>_<seq>_<frame>``
``ade20k``      ``ADEChallengeData2016/{images,annotations}/{training,validation}/``
``coco_stuff``  ``{train,val}_label/``, ``{train,val}_img/``, optional ``{train,val}_inst/``
``aligned``     pix2pix A|B images side by side, in ``{phase}/`` or in the root itself
``sketch``      any folder of images, searched recursively (Auto-painter draws their sketches
                on the fly, ``data.line_extraction``); in a dataset folder with ``{phase}_img/``
                only the images there; a folder with ``{phase}_sketch/`` is read as
                ``sketch_pairs``
``sketch_pairs`` ``{phase}_sketch/`` (line drawings) and ``{phase}_img/`` (colour images); paired by
                stem, as ``condsynth data sketches`` writes them
``normals``     ``{phase}_normals/`` (RGB-encoded surface normals, :mod:`condsynth.data.normals`)
                and ``{phase}_img/``; paired by stem (``{phase}_depth/`` may lie beside them), as
                ``condsynth data render-scenes`` and ``normals-from-depth`` write them
==============  ==============================================================================

The sources of the GAN toolbox (:data:`SOURCE_LAYOUTS`: ``image_folder``, ``class_folders``,
``attributes_csv``, ``celeba``, ``unpaired``, ``idx``) are single images with an optional class
or attribute vector, not pairs; :mod:`condsynth.data.sources` describes and reads them, and
:func:`resolve_layout` detects them.

``auto`` detects the layout from the folders present.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from condsynth.data.idx import find_idx_sets
from condsynth.data.io import read_label
from condsynth.errors import DataError

__all__ = ["Sample", "Discovery", "LAYOUTS", "SOURCE_LAYOUTS", "LAYOUT_DEFAULTS",
           "IMAGE_SUFFIXES", "IMAGE_CONDITION_LAYOUTS", "ATTRIBUTES_CSV", "LABELS_JSON",
           "discover", "scan", "resolve_layout", "available_phases", "apply_label_shift",
           "read_classes", "detect_num_classes", "celeba_file", "split_bases",
           "list_images"]

LAYOUTS = ("pix2pixhd", "spade_custom", "cityscapes", "ade20k", "coco_stuff", "aligned", "sketch",
           "sketch_pairs", "normals")
# Layouts whose condition is an image (A|B halves, a sketch, normals), not a label map.
IMAGE_CONDITION_LAYOUTS = ("aligned", "sketch", "sketch_pairs", "normals")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# Single-image sources (condsynth.data.sources), detected here but read there.
SOURCE_LAYOUTS = ("image_folder", "class_folders", "attributes_csv", "celeba", "unpaired", "idx")
ATTRIBUTES_CSV = "attributes.csv"    # attribute table of an attributes_csv folder
LABELS_JSON = "dataset.json"         # class labels of a class_folders folder, instead of folders
SPLITS = ("train", "val", "test")

# What the official releases assume about each benchmark. ADE20K stores 0 = "other" and classes
# 1..150; SPADE shifts every id down by one so that "other" becomes the dont-care value.
LAYOUT_DEFAULTS: dict[str, dict[str, int]] = {
    "cityscapes": {"num_classes": 35},                   # labelIds 0..33 (+ license plate)
    "ade20k": {"num_classes": 150, "label_shift": -1},   # 0 (other) → dont-care
    "coco_stuff": {"num_classes": 182},                  # 0..181, 255 = unlabeled
}

_NO_INSTANCE = "train without instance maps (--no-instance / label.use_instance=false)"


@dataclass
class Sample:
    """One item of a dataset. For ``aligned`` layouts ``image`` is the A|B file and ``label`` is
    None; for ``sketch`` only ``image`` is set; ``sketch_pairs`` set ``image`` and ``sketch``."""

    image: Path | None
    label: Path | None = None
    instance: Path | None = None
    name: str = ""
    sketch: Path | None = None
    normals: Path | None = None          # ``normals`` layout: the RGB-encoded normal map


@dataclass
class Discovery:
    """What :func:`scan` found: the pairs it could make and the problems it met on the way."""

    layout: str
    phase: str
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- public functions


def discover(root: str | Path, layout: str = "auto", phase: str = "train",
             use_instance: bool = False, require_images: bool = True) -> tuple[str, list[Sample]]:
    """Find the pairs of a dataset.

    Args:
        root: the dataset folder.
        layout: one of :data:`LAYOUTS` or ``"auto"``.
        phase: ``"train"``, ``"test"`` or ``"val"`` (mapped to each benchmark's folder names).
        use_instance: instance maps are required; a missing one is an error.
        require_images: when False, a label layout without its image folder gives samples with
            ``image=None`` (synthesis from label maps alone).
    Returns:
        The resolved layout name and the samples sorted by name.
    Raises:
        DataError: missing folders, unpaired files, missing instance maps, an empty dataset.
    """
    found = scan(root, layout, phase, use_instance, require_images)
    if found.problems:
        raise DataError("\n".join(found.problems))
    return found.layout, found.samples


def scan(root: str | Path, layout: str = "auto", phase: str = "train",
         use_instance: bool = False, require_images: bool = True) -> Discovery:
    """Like :func:`discover`, but collect the problems instead of raising them (for
    ``condsynth data check``). Unpaired files are left out of ``samples``."""
    root = Path(root)
    found = Discovery(layout=layout, phase=phase)
    try:
        found.layout = resolve_layout(root, layout, phase)
        if found.layout in SOURCE_LAYOUTS:
            raise DataError(f"{root}: the {found.layout} layout holds single images, not pairs. "
                            "Fix: train a method that reads it (condsynth.data.sources), or "
                            "set --layout to a paired layout.")
        finder = _FINDERS[found.layout]
        finder(root, phase, found, use_instance, require_images)
    except DataError as err:
        found.problems.append(str(err))
        return found
    found.samples.sort(key=lambda s: s.name)
    if not found.samples and not found.problems:
        found.problems.append(f"{root}: no {found.layout} pairs found for phase '{phase}' "
                              "(the folders are there but empty). Fix: add data or check --phase.")
    return found


def resolve_layout(root: str | Path, layout: str = "auto", phase: str = "train") -> str:
    """``layout`` itself when explicit, else the layout detected from the folders under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found. Fix: check data.root / --data.")
    if layout != "auto":
        if layout not in LAYOUTS + SOURCE_LAYOUTS:
            raise DataError(f"unknown dataset layout '{layout}'. Fix: use one of "
                            f"auto, {', '.join(LAYOUTS + SOURCE_LAYOUTS)}.")
        if layout == "sketch" and _has_sketch_pairs(root):
            # Read recursively as plain images, a pairs folder would mix sketches into the
            # colour images; its sketches are what the user means.
            return "sketch_pairs"
        return layout
    if _has_sketch_pairs(root):
        return "sketch_pairs"
    if _has_normals(root):
        return "normals"
    if (root / "gtFine").is_dir() and (root / "leftImg8bit").is_dir():
        return "cityscapes"
    if _ade_base(root) is not None:
        return "ade20k"
    if (root / "label_dir").is_dir() or (root / phase / "label_dir").is_dir():
        return "spade_custom"
    if any((root / f"{p}_label").is_dir() for p in (phase, "train", "test", "val")):
        # COCO-Stuff names its second split "val"; pix2pixHD datasets name theirs "test".
        has_val = (root / "val_label").is_dir() or (root / "val_img").is_dir()
        has_test = (root / "test_label").is_dir() or (root / "test_img").is_dir()
        return "coco_stuff" if has_val and not has_test else "pix2pixhd"
    source = _detect_source(root, phase)
    if source is not None:
        return source
    folder = root / phase if (root / phase).is_dir() else root
    images = list_images(folder)
    if images:
        # A plain folder is A|B pairs only if its pictures are two squares side by side; any
        # other folder of images is ambiguous, so ask rather than guess.
        try:
            with Image.open(images[0]) as img:
                width, height = img.size
        except (OSError, SyntaxError, ValueError):
            width = height = 0
        if width == 2 * height > 0:
            return "aligned"
        raise DataError(f"{root}: found a plain folder of images ({images[0].name} is "
                        f"{width}x{height}, not an A|B pair of squares). Fix: set the layout "
                        "explicitly: --layout sketch for images alone, --layout aligned for "
                        "pix2pix A|B pairs, --layout image_folder for unconditional GANs.")
    raise DataError(
        f"{root}: could not detect the dataset layout. Looked for: gtFine/ + leftImg8bit/ "
        "(cityscapes), ADEChallengeData2016/ (ade20k), label_dir/ + image_dir/ (spade_custom), "
        f"{phase}_label/ + {phase}_img/ (pix2pixhd), train_label/ + val_label/ (coco_stuff), "
        f"{phase}_sketch/ + {phase}_img/ (sketch_pairs), "
        f"images in {phase}/ or in the folder itself (aligned), list_attr_celeba.txt (celeba), "
        "*-images-idx3-ubyte[.gz] (idx), A/ + B/ (unpaired), attributes.csv (attributes_csv), "
        "dataset.json or one sub-folder of images per class (class_folders). Fix: arrange the "
        "data in one of these layouts, or set --layout.")


def available_phases(root: str | Path, layout: str) -> list[str]:
    """The phases a dataset holds, as names :func:`discover` accepts. A flat folder (no phase
    sub-folders) counts as a single ``"train"`` phase."""
    root = Path(root)
    layout = resolve_layout(root, layout)
    if layout in ("pix2pixhd", "coco_stuff"):
        found = [p.name[: -len("_label")] for p in sorted(root.glob("*_label")) if p.is_dir()]
        return _train_first(found)
    if layout == "sketch_pairs":
        found = [p.name[: -len("_sketch")] for p in sorted(root.glob("*_sketch")) if p.is_dir()]
        return _train_first(found)
    if layout == "cityscapes":
        return _train_first(p.name for p in sorted((root / "gtFine").iterdir()) if p.is_dir())
    if layout == "ade20k":
        base = _ade_base(root) or root
        names = {"training": "train", "validation": "val"}
        return [names[p] for p in ("training", "validation") if (base / "annotations" / p).is_dir()]
    if layout == "spade_custom":
        found = [p for p in ("train", "test", "val") if (root / p / "label_dir").is_dir()]
        return found or ["train"]
    if layout == "idx":
        return _train_first(s.split for s in find_idx_sets(root))
    if layout == "celeba":
        return list(SPLITS) if celeba_file(root, "list_eval_partition.txt") else ["train"]
    found = [p for p in ("train", "val", "test") if (root / p).is_dir()]
    return found or ["train"]


def apply_label_shift(label: np.ndarray, layout: str, dontcare: int = 255) -> np.ndarray:
    """Apply a layout's id convention: ADE20K ids drop by one and 0 (other) becomes ``dontcare``."""
    shift = LAYOUT_DEFAULTS.get(layout, {}).get("label_shift", 0)
    if shift == 0:
        return label
    shifted = label + shift
    shifted[shifted < 0] = dontcare
    return shifted


def read_classes(root: str | Path) -> tuple[list[str], list[list[int]]] | None:
    """Class names and colours from ``root/classes.json`` (``{"names": [...], "colours":
    [[r, g, b], ...]}``, written by the procedural generator), or None if there is none."""
    path = Path(root) / "classes.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}). Fix: correct or delete it.") from None
    names = raw.get("names") if isinstance(raw, dict) else None
    colours = raw.get("colours", []) if isinstance(raw, dict) else None
    if (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
            or not isinstance(colours, list)
            or not all(isinstance(c, list) and len(c) == 3 for c in colours)):
        raise DataError(f"{path}: expected {{\"names\": [str, ...], \"colours\": [[r, g, b], "
                        "...]}}. Fix: correct or delete it.")
    if colours and len(colours) != len(names):
        raise DataError(f"{path}: {len(names)} names but {len(colours)} colours. Fix: give one "
                        "colour per class.")
    return list(names), [list(map(int, c)) for c in colours]


def detect_num_classes(root: str | Path, layout: str = "auto", phase: str = "train",
                       dontcare: int = 255, max_files: int = 200,
                       palette: dict[tuple[int, int, int], int] | None = None) -> int:
    """The number of classes of a dataset, in order of preference: 0 for layouts without label
    maps (aligned, sketch, sketch_pairs: the condition is an image); ``classes.json``; the
    benchmark's own count (ADE20K 150, COCO-Stuff 182, Cityscapes 35); the largest palette id
    + 1; the largest id (dont-care excluded) + 1 over up to ``max_files`` label maps spread
    evenly over the dataset."""
    layout = resolve_layout(root, layout, phase)
    if layout in IMAGE_CONDITION_LAYOUTS:
        return 0                # even beside a classes.json: the labels are not read
    classes = read_classes(root)
    if classes is not None:
        return len(classes[0])
    if "num_classes" in LAYOUT_DEFAULTS.get(layout, {}):
        return LAYOUT_DEFAULTS[layout]["num_classes"]
    if palette:
        return max(i for i in palette.values() if i != dontcare) + 1
    _, samples = discover(root, layout, phase, require_images=False)
    picks = np.unique(np.linspace(0, len(samples) - 1, min(len(samples), max_files)).round())
    pixels: dict[int, int] = {}
    where: dict[int, Path] = {}
    for index in picks.astype(int):
        label = apply_label_shift(read_label(samples[index].label), layout, dontcare)
        ids, counts = np.unique(label[label != dontcare], return_counts=True)
        for i, n in zip(ids.tolist(), counts.tolist(), strict=True):
            pixels[i] = pixels.get(i, 0) + n
            where.setdefault(i, samples[index].label)
    stray = stray_class_ids(pixels)
    if stray:
        raise DataError(stray_ids_message(stray, pixels, where, dontcare) + " (Or set "
                        "label.num_classes to say how many classes there are.)")
    return max(pixels, default=-1) + 1


# An id this rare (share of the labelled pixels) and this far above the others is a stray
# pixel value, not a class: inferring the class count from it would make a huge one-hot input.
STRAY_SHARE = 1e-3
STRAY_GAP = 16


def stray_class_ids(pixels: dict[int, int]) -> list[int]:
    """The largest ids that would inflate an inferred class count, largest first: each on
    fewer than 0.1 % of the labelled pixels, and more than double (and 16 above) the count the
    ids below it need. ``pixels`` maps id -> pixels (dont-care left out)."""
    ids = sorted(i for i in pixels if i >= 0)
    total = sum(pixels[i] for i in ids)
    stray = []
    while len(ids) > 1:
        top, needed = ids[-1], ids[-2] + 1
        if pixels[top] >= total * STRAY_SHARE or top + 1 <= max(2 * needed, needed + STRAY_GAP):
            break
        stray.append(top)
        ids.pop()
    return stray


def stray_ids_message(stray: list[int], pixels: dict[int, int], where: dict[int, Path],
                      dontcare: int) -> str:
    """What :func:`stray_class_ids` found, and the fix."""
    shown = ", ".join(f"{i} ({pixels[i]} px, e.g. in {where[i]})" for i in stray[:4])
    rest = [i for i in pixels if i not in stray]
    return (f"label id(s) {shown} cover almost no pixels yet would make {max(stray) + 1} "
            f"classes (a {max(stray) + 1}-channel one-hot input) while the other ids go up to "
            f"{max(rest, default=0)}. Fix: relabel those pixels to a class or to {dontcare} "
            "(dont-care).")


def celeba_file(root: str | Path, name: str) -> Path | None:
    """A file of the CelebA release, in the root or where the release puts it (``Anno/``,
    ``Eval/``, ``Img/``); None when absent."""
    for folder in ("", "Anno", "Eval", "Img"):
        path = Path(root) / folder / name
        if path.exists():
            return path
    return None


def split_bases(root: str | Path) -> list[Path]:
    """The split folders of a single-image source (``root/train``, ``root/val``,
    ``root/test``, those present), or ``[root]`` when it has none: then everything is train."""
    root = Path(root)
    return [root / p for p in SPLITS if (root / p).is_dir()] or [root]


# --------------------------------------------------------------------------- helpers


def _detect_source(root: Path, phase: str) -> str | None:
    """The single-image source layout of ``root``, or None when it is none of them."""
    if celeba_file(root, "list_attr_celeba.txt") is not None:
        return "celeba"
    if find_idx_sets(root):
        return "idx"
    bases = split_bases(root)
    base = next((b for b in bases if b.name == phase), bases[0])
    if (base / "A").is_dir() and (base / "B").is_dir():
        return "unpaired"
    if (base / ATTRIBUTES_CSV).is_file():
        return "attributes_csv"
    if (base / LABELS_JSON).is_file():
        return "class_folders"
    if not list_images(base) and any(list_images(d, recursive=True)
                                      for d in base.iterdir() if d.is_dir()):
        return "class_folders"
    return None



def _train_first(phases: Iterable[str]) -> list[str]:
    return sorted(set(phases), key=lambda p: (p != "train", p))


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (hidden files skipped), sorted."""
    if not folder.is_dir():
        return []
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def _require_dir(folder: Path, what: str, fix: str = "") -> Path:
    if not folder.is_dir():
        raise DataError(f"{folder}: the {what} folder is missing. Fix: "
                        f"{fix or 'create it, or check data.root / --phase / --layout'}.")
    return folder


def _by_key(paths: Iterable[Path], key: Callable[[Path], str | None]) -> dict[str, Path]:
    """Index files by their pairing key; two files with one key are an error (which to use?)."""
    index: dict[str, Path] = {}
    for path in paths:
        name = key(path)
        if name is None:
            continue
        if name in index:
            raise DataError(f"{index[name]} and {path} have the same name '{name}'; pairs are "
                            "matched by name. Fix: remove or rename one of them.")
        index[name] = path
    return index


def _unmatched(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:5])
    return shown + (f" (and {len(names) - 5} more)" if len(names) > 5 else "")


def _pair(found: Discovery, labels: dict[str, Path], images: dict[str, Path] | None,
          instances: dict[str, Path] | None, where: tuple[Path, Path | None, Path | None],
          use_instance: bool) -> None:
    """Match label maps, images and instance maps by name; record what has no partner."""
    label_dir, image_dir, instance_dir = where
    if not labels:
        raise DataError(f"{label_dir}: no label maps found. Fix: add the label maps (PNG) or "
                        "check data.root / --phase.")
    names = sorted(labels)
    if images is not None:
        if not images:
            raise DataError(f"{image_dir}: no images found. Fix: add the images or check "
                            "data.root / --phase.")
        lonely_labels = set(labels) - set(images)
        lonely_images = set(images) - set(labels)
        if lonely_labels or lonely_images:
            parts = [f"{len(labels)} label maps in {label_dir} but {len(images)} images in "
                     f"{image_dir}, and they do not pair up by name."]
            if lonely_labels:
                parts.append(f"Label maps without an image: {_unmatched(lonely_labels)}.")
            if lonely_images:
                parts.append(f"Images without a label map: {_unmatched(lonely_images)}.")
            parts.append("Fix: add the missing files or remove the extras.")
            found.problems.append(" ".join(parts))
        names = sorted(set(labels) & set(images))
    if use_instance and instances is not None:
        lonely = [n for n in names if n not in instances]
        if lonely:
            found.problems.append(
                f"{instance_dir}: no instance map for {len(lonely)} of {len(names)} label maps: "
                f"{_unmatched(lonely)}. Fix: add them, or {_NO_INSTANCE}.")
    for name in names:
        found.samples.append(Sample(image=images[name] if images is not None else None,
                                    label=labels[name],
                                    instance=(instances or {}).get(name), name=name))


def _stem(path: Path) -> str:
    return path.stem


def _optional_instances(folder: Path, use_instance: bool,
                        key: Callable[[Path], str | None] = _stem) -> dict[str, Path] | None:
    """Instance maps in ``folder``: None when absent (an error only if they are required)."""
    if not folder.is_dir():
        if use_instance:
            raise DataError(f"{folder}: label.use_instance is set but the instance map folder "
                            f"is missing. Fix: put the instance maps there, or {_NO_INSTANCE}.")
        return None
    return _by_key(list_images(folder), key)


def _images_or_none(folder: Path, require_images: bool, what: str,
                    key: Callable[[Path], str | None] = _stem,
                    recursive: bool = False) -> dict[str, Path] | None:
    if not require_images and not folder.is_dir():
        return None
    _require_dir(folder, what)
    return _by_key(list_images(folder, recursive), key)


# --------------------------------------------------------------------------- one finder per layout


def _find_pix2pixhd(root: Path, phase: str, found: Discovery, use_instance: bool,
                    require_images: bool, phase_dir: str | None = None) -> None:
    phase_dir = phase_dir or phase
    label_dir = _require_dir(root / f"{phase_dir}_label", "label map")
    image_dir = root / f"{phase_dir}_img"
    instance_dir = root / f"{phase_dir}_inst"
    labels = _by_key(list_images(label_dir), _stem)
    images = _images_or_none(image_dir, require_images, "image")
    instances = _optional_instances(instance_dir, use_instance)
    _pair(found, labels, images, instances, (label_dir, image_dir, instance_dir), use_instance)


def _find_coco_stuff(root: Path, phase: str, found: Discovery, use_instance: bool,
                     require_images: bool) -> None:
    phase_dir = "val" if phase == "test" and not (root / "test_label").is_dir() else phase
    _find_pix2pixhd(root, phase, found, use_instance, require_images, phase_dir)


def _find_spade_custom(root: Path, phase: str, found: Discovery, use_instance: bool,
                       require_images: bool) -> None:
    base = root / phase if (root / phase / "label_dir").is_dir() else root
    label_dir = _require_dir(base / "label_dir", "label map")
    image_dir = base / "image_dir"
    instance_dir = base / "instance_dir"
    labels = _by_key(list_images(label_dir), _stem)
    images = _images_or_none(image_dir, require_images, "image")
    instances = _optional_instances(instance_dir, use_instance)
    _pair(found, labels, images, instances, (label_dir, image_dir, instance_dir), use_instance)


def _suffix_key(suffix: str) -> Callable[[Path], str | None]:
    """Cityscapes pairing key: the file name without ``suffix``; other files are skipped."""
    def key(path: Path) -> str | None:
        return path.name[: -len(suffix)] if path.name.endswith(suffix) else None
    return key


def _find_cityscapes(root: Path, phase: str, found: Discovery, use_instance: bool,
                     require_images: bool) -> None:
    # Cityscapes has no public test labels, so "test" usually means its "val" split.
    split = "val" if phase == "test" and not (root / "gtFine" / "test").is_dir() else phase
    label_dir = _require_dir(root / "gtFine" / split, "Cityscapes gtFine")
    image_dir = root / "leftImg8bit" / split
    files = list_images(label_dir, recursive=True)
    labels = _by_key(files, _suffix_key("_gtFine_labelIds.png"))
    instances = _by_key(files, _suffix_key("_gtFine_instanceIds.png"))
    if use_instance and not instances:
        raise DataError(f"{label_dir}: label.use_instance is set but no *_gtFine_instanceIds.png "
                        f"files were found. Fix: add them, or {_NO_INSTANCE}.")
    images = _images_or_none(image_dir, require_images, "Cityscapes leftImg8bit",
                             _suffix_key("_leftImg8bit.png"), recursive=True)
    _pair(found, labels, images, instances or None, (label_dir, image_dir, label_dir),
          use_instance)


def _ade_base(root: Path) -> Path | None:
    for base in (root / "ADEChallengeData2016", root):
        if (base / "images").is_dir() and (base / "annotations").is_dir():
            return base
    return None


def _find_ade20k(root: Path, phase: str, found: Discovery, use_instance: bool,
                 require_images: bool) -> None:
    base = _ade_base(root)
    if base is None:
        raise DataError(f"{root}: expected ADEChallengeData2016/images/ and "
                        "ADEChallengeData2016/annotations/ (or images/ and annotations/ in the "
                        "folder itself). Fix: point data.root at the unpacked ADE20K release.")
    if use_instance:
        raise DataError(f"{root}: the ADE20K layout has no instance maps. Fix: "
                        f"{_NO_INSTANCE}.")
    split = {"train": "training", "test": "validation", "val": "validation"}.get(phase, phase)
    label_dir = _require_dir(base / "annotations" / split, "ADE20K annotations")
    image_dir = base / "images" / split
    labels = _by_key(list_images(label_dir), _stem)
    images = _images_or_none(image_dir, require_images, "ADE20K images")
    _pair(found, labels, images, None, (label_dir, image_dir, None), use_instance)


def _find_image_folder(root: Path, phase: str, found: Discovery, use_instance: bool,
                       require_images: bool, recursive: bool) -> None:
    if use_instance:
        raise DataError(f"{root}: the {found.layout} layout has no instance maps. Fix: "
                        f"{_NO_INSTANCE}.")
    folder = root / phase if (root / phase).is_dir() else root
    images = list_images(folder, recursive)
    if not images:
        raise DataError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
                        f"{' recursively' if recursive else ''}). Fix: check data.root / --phase.")
    # Names relative to the folder keep sub-folders apart when searching recursively.
    index = _by_key(images, lambda p: p.relative_to(folder).with_suffix("").as_posix())
    found.samples.extend(Sample(image=path, name=name) for name, path in index.items())


def _find_aligned(root: Path, phase: str, found: Discovery, use_instance: bool,
                  require_images: bool) -> None:
    _find_image_folder(root, phase, found, use_instance, require_images, recursive=False)


def _find_sketch(root: Path, phase: str, found: Discovery, use_instance: bool,
                 require_images: bool) -> None:
    if any(p.is_dir() for p in root.glob("*_img")):
        # A paired dataset (pix2pixHD layout): its photos, not its label and instance maps.
        root = _require_dir(root / f"{phase}_img", "image")
        phase = ""
    _find_image_folder(root, phase, found, use_instance, require_images, recursive=True)


def _has_sketch_pairs(root: Path) -> bool:
    return any(p.is_dir() and (root / f"{p.name[: -len('_sketch')]}_img").is_dir()
               for p in root.glob("*_sketch"))


def _find_sketch_pairs(root: Path, phase: str, found: Discovery, use_instance: bool,
                       require_images: bool) -> None:
    if use_instance:
        raise DataError(f"{root}: the sketch_pairs layout has no instance maps. Fix: "
                        f"{_NO_INSTANCE}.")
    sketch_dir = _require_dir(root / f"{phase}_sketch", "sketch",
                              "write the pairs with `condsynth data sketches`, or check --phase")
    image_dir = root / f"{phase}_img"
    sketches = _by_key(list_images(sketch_dir), _stem)
    if not sketches:
        raise DataError(f"{sketch_dir}: no sketches found. Fix: add the line drawings (PNG) or "
                        "check data.root / --phase.")
    images = _images_or_none(image_dir, require_images, "image")
    names = sorted(sketches)
    if images is not None:
        lonely = sorted(set(sketches) ^ set(images))
        if lonely:
            found.problems.append(
                f"{len(sketches)} sketches in {sketch_dir} but {len(images)} images in "
                f"{image_dir}, and {len(lonely)} do not pair up by name: {_unmatched(lonely)}. "
                "Fix: add the missing files or remove the extras.")
        names = sorted(set(sketches) & set(images))
    found.samples.extend(Sample(image=images[n] if images is not None else None,
                                sketch=sketches[n], name=n) for n in names)


def _has_normals(root: Path) -> bool:
    return any(p.is_dir() and (root / f"{p.name[: -len('_normals')]}_img").is_dir()
               for p in root.glob("*_normals"))


def _find_normals(root: Path, phase: str, found: Discovery, use_instance: bool,
                  require_images: bool) -> None:
    if use_instance:
        raise DataError(f"{root}: the normals layout has no instance maps. Fix: "
                        f"{_NO_INSTANCE}.")
    normals_dir = _require_dir(root / f"{phase}_normals", "normals",
                               "write them with `condsynth data render-scenes` or "
                               "`condsynth data normals-from-depth`, or check --phase")
    image_dir = _require_dir(root / f"{phase}_img", "image")
    normals = _by_key(list_images(normals_dir), _stem)
    images = _by_key(list_images(image_dir), _stem)
    lonely = sorted(set(normals) ^ set(images))
    if lonely:
        found.problems.append(
            f"{len(normals)} normal maps in {normals_dir} but {len(images)} images in "
            f"{image_dir}, and {len(lonely)} do not pair up by name: {_unmatched(lonely)}. "
            "Fix: add the missing files or remove the extras.")
    found.samples.extend(Sample(image=images[n], normals=normals[n], name=n)
                         for n in sorted(set(normals) & set(images)))


_FINDERS: dict[str, Callable[[Path, str, Discovery, bool, bool], None]] = {
    "pix2pixhd": _find_pix2pixhd,
    "spade_custom": _find_spade_custom,
    "cityscapes": _find_cityscapes,
    "ade20k": _find_ade20k,
    "coco_stuff": _find_coco_stuff,
    "aligned": _find_aligned,
    "sketch": _find_sketch,
    "sketch_pairs": _find_sketch_pairs,
    "normals": _find_normals,
}
