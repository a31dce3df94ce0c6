"""Build a preference-study folder from several systems' outputs for the same inputs."""

from __future__ import annotations

import html
import json
import os
import random
import secrets
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from condsynth.data.layouts import IMAGE_SUFFIXES
from condsynth.errors import CondsynthError, DataError

MANIFEST = "manifest.json"    # served: items and their opaque option names
KEY = "key.json"              # never served: which option is which system
RESULTS = "results.json"      # never served whole: the answers
FORMAT_VERSION = 1


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of images")
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}


def build_study(out_dir: str | Path, systems: dict[str, str | Path],
                inputs: str | Path | None = None, count: int | None = None, seed: int = 0,
                title: str = "Which picture is best?",
                question: str = "Pick the best and the worst picture for this input.",
                overwrite: bool = False) -> dict[str, Any]:
    """Write a study into ``out_dir``.

    Args:
        out_dir: the study folder (created; an existing study's answers are kept).
        systems: system name -> folder of its output images; items are the file stems that
            every folder holds.
        inputs: optional folder of input pictures (label maps, sketches) shown above the
            options, paired by stem.
        count: use a seeded random sample of this many items (default: all).
        seed: fixes the sample of items.
        title, question: the page's texts.
        overwrite: replace a study already in ``out_dir`` (its answers are discarded).
    Returns:
        The public manifest.
    """
    if len(systems) < 2:
        raise CondsynthError("a preference study needs at least 2 systems (Auto-painter "
                             "compared several); pass --system NAME=DIR more than once")
    folders = {name: _images_by_stem(Path(folder)) for name, folder in systems.items()}
    common = sorted(set.intersection(*(set(f) for f in folders.values())))
    if not common:
        raise DataError("the systems' folders share no file names; each must hold one output "
                        "per input, named after the input (e.g. 000001.png)")
    input_files = _images_by_stem(Path(inputs)) if inputs else {}
    rng = random.Random(seed)
    if count is not None and count < len(common):
        common = sorted(rng.sample(common, count))
    out_dir = Path(out_dir)
    if (out_dir / KEY).is_file():
        if not overwrite:
            raise CondsynthError(f"{out_dir} already holds a study (its answers are in "
                                 f"{RESULTS}). Fix: choose another --out, or pass --overwrite "
                                 "to build anew and discard its answers.")
        for name in (RESULTS, KEY, MANIFEST):
            (out_dir / name).unlink(missing_ok=True)
    for folder in ("images", "inputs"):
        if (out_dir / folder).exists():
            shutil.rmtree(out_dir / folder)
    images_dir = out_dir / "images"
    items, key = [], {}
    for index, stem in enumerate(common):
        item_id = f"item{index:04d}"
        options, owners = [], {}
        for name, files in folders.items():
            opaque = secrets.token_hex(6)         # a name that says nothing of the system
            source = files[stem]
            target = images_dir / item_id / f"{opaque}{source.suffix.lower()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            options.append({"id": opaque, "src": target.relative_to(out_dir).as_posix()})
            owners[opaque] = name
        options.sort(key=lambda o: o["id"])   # random names: the stored order says nothing
        entry: dict[str, Any] = {"id": item_id, "options": options}
        if stem in input_files:
            source = input_files[stem]
            target = out_dir / "inputs" / f"{item_id}{source.suffix.lower()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            entry["input"] = target.relative_to(out_dir).as_posix()
        items.append(entry)
        key[item_id] = {"stem": stem, "owners": owners}
    manifest = {"format_version": FORMAT_VERSION, "title": title, "question": question,
                "items": items, "study_id": f"{seed}-{secrets.token_hex(4)}"}
    _atomic_json(out_dir / MANIFEST, manifest)
    _atomic_json(out_dir / KEY, {"format_version": FORMAT_VERSION, "systems": sorted(systems),
                                 "sources": {k: str(Path(v).resolve())
                                             for k, v in systems.items()},
                                 "stems": common, "items": key})
    _atomic_json(out_dir / RESULTS, {"format_version": FORMAT_VERSION, "answers": []})
    page = (resources.files("condsynth.study") / "page.html").read_text()
    page = page.replace("__TITLE__", html.escape(title)).replace(
        "__MANIFEST__", json.dumps(manifest).replace("</", "<\\/"))
    (out_dir / "index.html").write_text(page)
    return manifest


def _atomic_json(path: Path, value: Any) -> None:
    """Write JSON so that a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
