"""``condsynth demo``: the whole job on the built-in data, on a CPU, in about five minutes.

It writes the procedural scenes, trains the demo preset on them with a progress bar, and
leaves ``index.html`` with rows of label | generated | real in the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from condsynth.cli import preset_path
from condsynth.config import apply_overrides, load_yaml

DEMO_PRESET = "pix2pix_cpu"
DEMO_SIZE = 128
DEMO_COUNT = 400


def run_demo(out: Path, method: str | None = None, steps: int | None = None,
             size: int | None = None, count: int | None = None, device: str | None = None,
             progress: bool = True) -> Path:
    """Make data in ``out/data``, train into ``out/run``; returns the samples page."""
    from condsynth.config import Config
    from condsynth.data.procedural import write_dataset
    from condsynth.train import prepare_config, train

    size = size or DEMO_SIZE
    count = count or DEMO_COUNT
    data_dir = out / "data"
    stamp = data_dir / "demo.json"
    wanted = {"count": count, "size": size, "seed": 0}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == wanted):
        print(f"writing {count} procedural scenes of {size}x{size} to {data_dir}")
        write_dataset(data_dir, count, size, seed=0, progress=progress)
        stamp.write_text(json.dumps(wanted))
    raw = load_yaml(preset_path(DEMO_PRESET if method is None else f"{method}_cpu"))
    overrides = [f"data.root={json.dumps(str(data_dir))}", f"data.load_size={size}",
                 f"data.crop_size={size}"]
    if steps is not None:
        overrides.append(f"train.max_steps={steps}")
    if device:
        overrides.append(f"train.device={device}")
    config = prepare_config(Config.from_dict(apply_overrides(raw, overrides), where="demo"))
    run_dir = out / "run"
    print(f"training {config.method} for {config.train.max_steps} steps into {run_dir}")
    train(config, run_dir, resume=False, progress=progress)
    return run_dir / "index.html"
