"""A fast look at every file of a training set before training, and what a run does when a
file that passed it still cannot be read mid-run.

Reading the headers of every image (size and format, no pixels) takes a second for thousands of
files, and finds the missing, empty and foreign files and the size mismatches that would
otherwise stop a run hours in. A file whose header is fine but whose pixels are cut short is
only found when it is decoded: the run then saves a checkpoint before it stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from condsynth.errors import DataError

_SHOWN = 5


def scan_headers(dataset: Any) -> None:
    """Raise a :class:`DataError` listing the files of ``dataset`` whose header cannot be read
    or whose size differs from their pair's. Datasets without file samples pass."""
    problems = []
    for sample in getattr(dataset, "samples", []):
        sizes = {}
        for role in ("image", "label", "instance", "sketch"):
            path = getattr(sample, role, None)
            if path is None:
                continue
            try:
                with Image.open(path) as img:
                    sizes[role] = (img.width, img.height)
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
                problems.append(f"{path}: {err}")
        if len(set(sizes.values())) > 1 and getattr(dataset, "layout", "") != "aligned":
            shown = ", ".join(f"{role} {w}x{h}" for role, (w, h) in sizes.items())
            problems.append(f"{sample.name or sample.image}: sizes differ ({shown})")
    if problems:
        more = f" and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise DataError(f"{len(problems)} file(s) of the training set cannot be used: "
                        f"{'; '.join(problems[:_SHOWN])}{more}. Nothing was trained. Fix: "
                        "re-export or remove them (`condsynth data check DIR` lists every "
                        "problem).")


def stopped_by_bad_file(err: DataError, run_dir: str | Path, step: int,
                        saved: bool) -> DataError:
    """The error that ends a run whose data met a problem at ``step`` (``saved``: after the
    run saved a checkpoint there). A loader worker's error arrives with the worker's traceback
    in its text; only the message itself is kept."""
    message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    message = message.removeprefix(f"{type(err).__module__}.{type(err).__name__}: ")
    if not saved:
        return DataError(message)             # nothing trained in this session: nothing lost
    return DataError(f"{message} Training stopped at step {step}, and a checkpoint of that step "
                     f"was saved in {run_dir}: after fixing the problem, `condsynth train "
                     f"--run {run_dir} --resume` continues.")
