"""SimGAN's visual Turing test (Shrivastava et al., 2017, Section 4.1): judges see a real image
and a refined one side by side and say which is real; near 50 % correct means the refined
images pass for real ones (the paper: 51.7 % for refined eyes, 81 % against raw synthetic).

Built on the preference study: each item shows one real and one refined image under opaque
names in random order, the judge marks the real-looking one "best" (and so the other "worst"),
and ``condsynth study report`` gives the ``real`` system's like rate: the share of correct
answers.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from condsynth.data.layouts import list_images
from condsynth.errors import DataError
from condsynth.study.build import build_study

STAGING = ".turing-pairs"          # a dot folder: never served

QUESTION = ("One picture is real, the other was made by a model. Mark the one you think is "
            "REAL as best (the other as worst).")


def build_turing_study(out_dir: str | Path, refined: str | Path, real: str | Path,
                       count: int | None = None, seed: int = 0,
                       title: str = "Real or refined?", overwrite: bool = False,
                       name: str = "refined") -> dict[str, Any]:
    """Write a real-vs-refined study into ``out_dir``: ``count`` (default: as many as both
    folders allow) seeded random pairs of a refined image (``condsynth refine`` output,
    searched recursively) and a real one. Returns the public manifest; the key names the
    systems ``real`` and ``name``."""
    refined_files = list_images(Path(refined), recursive=True)
    real_files = list_images(Path(real), recursive=True)
    for folder, files in ((refined, refined_files), (real, real_files)):
        if not files:
            raise DataError(f"{folder}: no images found (searched recursively). Fix: give the "
                            "folder of refined images and the folder of real ones.")
    pairs = min(len(refined_files), len(real_files))
    if count is not None:
        pairs = min(pairs, count)
    rng = random.Random(seed)
    chosen_refined = rng.sample(refined_files, pairs)
    chosen_real = rng.sample(real_files, pairs)
    staging = Path(out_dir) / STAGING
    if staging.exists():
        shutil.rmtree(staging)
    for system, files in ((name, chosen_refined), ("real", chosen_real)):
        folder = staging / system
        folder.mkdir(parents=True)
        for index, path in enumerate(files):
            shutil.copyfile(path, folder / f"pair{index:05d}{path.suffix.lower()}")
    return build_study(out_dir, {"real": staging / "real", name: staging / name}, count=None,
                       seed=seed, title=title, question=QUESTION, overwrite=overwrite)
