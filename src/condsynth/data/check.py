"""``condsynth data check DIR``: scan a dataset and report everything that is wrong with it.

Unlike the training Dataset, which stops at the first bad file, the check reads every file and
collects every problem (unreadable files, size mismatches, out-of-range ids, colour label maps
without a palette, JPEG label maps, unpaired files, missing instance maps), alongside what it
found: the layout, the pairs per phase, the image sizes and the pixel count of every class.
Single-image sources (:mod:`condsynth.data.sources`) report their items per class, the balance
of their attributes and the semi-supervised split instead.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from condsynth.config import DataConfig
from condsynth.data.io import Palette, load_palette, read_image, read_instance, read_label
from condsynth.data.layouts import (
    IMAGE_CONDITION_LAYOUTS,
    LAYOUT_DEFAULTS,
    Sample,
    apply_label_shift,
    available_phases,
    read_classes,
    resolve_layout,
    scan,
    stray_class_ids,
    stray_ids_message,
)
from condsynth.data.sources import Source, is_source_layout, load_source, semi_supervised_split
from condsynth.errors import ConfigError, DataError

__all__ = ["PhaseReport", "CheckReport", "check_dataset"]

_MAX_SHOWN = 20   # problems printed by text(); to_dict() keeps them all


@dataclass
class PhaseReport:
    """What one phase (split) of the dataset holds."""

    phase: str
    pairs: int = 0
    image_sizes: dict[str, int] = field(default_factory=dict)   # "WxH" → number of images
    class_pixels: dict[int, int] = field(default_factory=dict)  # class id → pixels, sorted by id
    instances: int = 0                                          # pairs with an instance map
    # Single-image sources:
    class_counts: dict[str, int] = field(default_factory=dict)  # class name → items
    labeled: int | None = None                   # items keeping their class (labeled_per_class)
    attribute_balance: dict[str, float] = field(default_factory=dict)  # name → fraction > 0
    real_images: int | None = None               # unpaired: B images (pairs counts A)


@dataclass
class CheckReport:
    """The result of :func:`check_dataset`; ``ok`` when no problem was found."""

    root: str
    layout: str | None = None
    num_classes: int | None = None
    labeled_per_class: int | None = None
    dontcare: int = 255
    class_names: list[str] = field(default_factory=list)
    phases: list[PhaseReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def text(self) -> str:
        """A human-readable report for the command line."""
        lines = [f"dataset {self.root}", f"  layout: {self.layout or 'unknown'}"]
        source = is_source_layout(self.layout or "")
        if self.num_classes is not None:
            lines.append(f"  classes: {self.num_classes}"
                         + ("" if source else f" (dont-care {self.dontcare})"))
        for phase in self.phases:
            lines.append(f"  phase {phase.phase}: {phase.pairs} item(s)")
            sizes = ", ".join(f"{size} ×{count}" for size, count in phase.image_sizes.items())
            lines.append(f"    image sizes: {sizes or 'none read'}")
            if source:
                lines.extend(self._source_lines(phase))
            elif self.layout not in IMAGE_CONDITION_LAYOUTS:
                lines.append(f"    instance maps: {phase.instances} of {phase.pairs}")
                lines.append("    classes found (id: pixels):")
                for class_id, pixels in phase.class_pixels.items():
                    lines.append(f"      {class_id:>5}{self._class_name(class_id)}: {pixels}")
        if self.ok:
            lines.append("OK: no problems found")
        else:
            lines.append(f"{len(self.problems)} problem(s):")
            lines.extend(f"  - {p}" for p in self.problems[:_MAX_SHOWN])
            if len(self.problems) > _MAX_SHOWN:
                lines.append(f"  ... and {len(self.problems) - _MAX_SHOWN} more (see --json)")
        return "\n".join(lines)

    def _source_lines(self, phase: PhaseReport) -> list[str]:
        lines = []
        if phase.real_images is not None:
            lines.append(f"    B (real) images: {phase.real_images}")
        if phase.class_counts:
            lines.append("    items per class (id name: items):")
            lines.extend(f"      {i:>5} {name}: {count}"
                         for i, (name, count) in enumerate(phase.class_counts.items()))
        if phase.labeled is not None:
            lines.append(f"    semi-supervised: {phase.labeled} labelled "
                         f"({self.labeled_per_class} per class), "
                         f"{phase.pairs - phase.labeled} unlabelled (class -1)")
        if phase.attribute_balance:
            lines.append("    attributes (fraction of items > 0):")
            lines.extend(f"      {name}: {fraction:.3f}"
                         for name, fraction in phase.attribute_balance.items())
        return lines

    def _class_name(self, class_id: int) -> str:
        if class_id == self.dontcare:
            return " (dont-care)"
        if 0 <= class_id < len(self.class_names):
            return f" ({self.class_names[class_id]})"
        return ""


def check_dataset(root: str | Path, layout: str = "auto", phase: str | None = None,
                  num_classes: int | None = None, dontcare: int = 255,
                  palette: str | Path | Palette | None = None,
                  use_instance: bool | None = None, labeled_per_class: int | None = None,
                  attributes: list[str] | None = None,
                  idx_prefix: str | None = None) -> CheckReport:
    """Read every file of a dataset and report what it holds and what is wrong with it.

    Args:
        root: the dataset folder.
        layout: a layout name or ``"auto"``.
        phase: one phase, or None for every phase present.
        num_classes: when known, ids ≥ num_classes (other than ``dontcare``) are problems; None
            takes ``classes.json`` or the benchmark's count when there is one.
        dontcare: the dont-care label value.
        palette: palette JSON path (or a loaded palette) for colour label maps.
        use_instance: True requires instance maps; None reports whether they are there.
        labeled_per_class: single-image sources: check and report this semi-supervised split.
        attributes: attribute tables: report only these attributes (``data.attributes``).
        idx_prefix: IDX files: which set of a folder holding several (``data.idx_prefix``).
    Returns:
        A :class:`CheckReport`; data problems never raise, they are listed in ``problems``.
    """
    report = CheckReport(root=str(root), dontcare=dontcare)
    try:
        report.layout = resolve_layout(root, layout, phase or "train")
        classes = read_classes(root)
        if isinstance(palette, (str, Path)):
            palette = load_palette(palette)
        phases = [phase] if phase else available_phases(root, report.layout)
    except DataError as err:
        report.problems.append(str(err))
        return report
    if is_source_layout(report.layout):
        settings = DataConfig(root=str(root), layout=report.layout,
                              attributes=list(attributes or []),
                              labeled_per_class=labeled_per_class, idx_prefix=idx_prefix)
        report.labeled_per_class = labeled_per_class
        for name in phases:
            _check_source_phase(settings, name, report)
        return report
    if not phases:
        report.problems.append(f"{root}: no phase folders found for the {report.layout} layout. "
                               "Fix: check the folder names (see condsynth.data.layouts).")
    if classes is not None:
        report.class_names = classes[0]
    if num_classes is None:
        num_classes = (len(classes[0]) if classes is not None
                       else LAYOUT_DEFAULTS.get(report.layout, {}).get("num_classes"))
    report.num_classes = num_classes
    where: dict[int, Path] = {}
    for name in phases:
        found = scan(root, report.layout, name, use_instance=bool(use_instance))
        report.problems.extend(found.problems)
        phase_report = PhaseReport(phase=name, pairs=len(found.samples))
        report.phases.append(phase_report)
        _check_phase(found.samples, report, phase_report, palette, where)
    if num_classes is None:                   # training would infer the count from the ids
        pixels: Counter[int] = Counter()
        for phase_report in report.phases:
            pixels.update({i: n for i, n in phase_report.class_pixels.items() if i != dontcare})
        stray = stray_class_ids(dict(pixels))
        if stray:
            report.problems.append(stray_ids_message(stray, dict(pixels), where, dontcare)
                                   + " (Or pass --num-classes N if those ids are classes.)")
    return report


def _check_phase(samples: list[Sample], report: CheckReport, phase: PhaseReport,
                 palette: Palette | None, where: dict[int, Path]) -> None:
    sizes: Counter[str] = Counter()
    pixels: Counter[int] = Counter()
    problems = report.problems
    for sample in tqdm(samples, desc=f"checking {phase.phase}", unit="item", disable=None):
        image = _attempt(read_image, sample.image, problems) if sample.image else None
        if image is not None:
            height, width = image.shape[:2]
            sizes[f"{width}x{height}"] += 1
            if report.layout == "aligned" and width % 2:
                problems.append(f"{sample.image}: an A|B image must have an even width, found "
                                f"{width}x{height}. Fix: re-export the pair.")
        if sample.label is None:
            continue
        label = _attempt(read_label, sample.label, problems, palette)
        if label is not None:
            label = apply_label_shift(label, report.layout or "", report.dontcare)
            _count_classes(label, sample.label, report, pixels, where)
            if image is not None and image.shape[:2] != label.shape:
                problems.append(f"size mismatch: label map {sample.label} is "
                                f"{label.shape[1]}x{label.shape[0]} but image {sample.image} is "
                                f"{image.shape[1]}x{image.shape[0]}. Fix: resize one of them "
                                "(label maps with NEAREST).")
        if sample.instance is not None:
            phase.instances += 1
            instance = _attempt(read_instance, sample.instance, problems)
            if instance is not None and label is not None and instance.shape != label.shape:
                problems.append(f"size mismatch: label map {sample.label} is "
                                f"{label.shape[1]}x{label.shape[0]} but instance map "
                                f"{sample.instance} is {instance.shape[1]}x{instance.shape[0]}."
                                " Fix: re-export the instance map at the label map's size.")
    phase.image_sizes = dict(sizes.most_common())
    phase.class_pixels = dict(sorted(pixels.items()))


def _check_source_phase(settings: DataConfig, phase: str, report: CheckReport) -> None:
    try:
        source = load_source(settings, phase)
    except (DataError, ConfigError) as err:
        report.problems.append(str(err))
        return
    found = PhaseReport(phase=phase, pairs=len(source))
    report.phases.append(found)
    if source.classes is not None:
        report.class_names = source.class_names
        report.num_classes = len(source.class_names)
        counts = np.bincount(source.classes, minlength=len(source.class_names))
        found.class_counts = dict(zip(source.class_names, counts.tolist(), strict=True))
        if settings.labeled_per_class is not None and phase == "train":
            try:
                found.labeled = len(semi_supervised_split(source, settings.labeled_per_class, 0,
                                                          settings.root))
            except (DataError, ConfigError) as err:
                report.problems.append(str(err))
    if source.attributes is not None:
        fractions = (source.attributes > 0).mean(axis=0).tolist()
        found.attribute_balance = dict(zip(source.attribute_names, fractions, strict=True))
    sizes: Counter[str] = Counter()
    _count_sizes(source, sizes, report.problems, phase)
    if source.real is not None:
        found.real_images = len(source.real)
        _count_sizes(source.real, sizes, report.problems, phase)
    found.image_sizes = dict(sizes.most_common())


def _count_sizes(source: Source, sizes: Counter[str], problems: list[str], phase: str) -> None:
    """Image sizes of a source, reading every file (unreadable ones become problems)."""
    if source.pixels is not None:
        count, height, width = source.pixels.shape
        sizes[f"{width}x{height}"] += count
        return
    for path in tqdm(source.paths, desc=f"checking {phase}", unit="item", disable=None):
        image = _attempt(read_image, Path(path), problems)
        if image is not None:
            sizes[f"{image.shape[1]}x{image.shape[0]}"] += 1


def _attempt(read: Callable[..., np.ndarray], path: Path, problems: list[str],
             *args: Any) -> np.ndarray | None:
    """``read(path, *args)``, turning its DataError or warning into a listed problem."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = read(path, *args)
        except DataError as err:
            problems.append(str(err))
            result = None
    problems.extend(str(w.message) for w in caught if issubclass(w.category, UserWarning))
    return result


def _count_classes(label: np.ndarray, path: Path, report: CheckReport,
                   pixels: Counter[int], where: dict[int, Path]) -> None:
    if label.size == 0:
        return
    if label.min() >= 0 and label.max() < 65536:
        counts = np.bincount(label.ravel())        # fast for the usual 8/16-bit label maps
        ids = np.nonzero(counts)[0]
        counts = counts[ids]
    else:
        ids, counts = np.unique(label, return_counts=True)
    pixels.update(dict(zip(ids.tolist(), counts.tolist(), strict=True)))
    for i in ids.tolist():
        where.setdefault(i, path)             # the first file holding each id
    if report.num_classes is not None:
        bad = [(i, n) for i, n in zip(ids.tolist(), counts.tolist(), strict=True)
               if (i < 0 or i >= report.num_classes) and i != report.dontcare]
        if bad:
            shown = ", ".join(f"{i} ({n} px)" for i, n in bad[:8])
            report.problems.append(
                f"{path}: label value(s) {shown} outside 0..{report.num_classes - 1} "
                f"(num_classes {report.num_classes}, dont-care {report.dontcare}). Fix: set "
                f"label.num_classes to at least {max(i for i, _ in bad) + 1}, or map these "
                f"pixels to {report.dontcare} (dont-care).")
