"""``condsynth demo``: the whole job on the built-in data, on a CPU, in about five minutes.

It writes the procedural scenes, trains the demo preset on them with a progress bar, and
leaves ``index.html`` with rows of label | generated | real in the run directory.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from condsynth.config import Config, apply_overrides
from condsynth.presets import load_preset_raw
from condsynth.registry import parse_config

# The method that learns best in the budget. Measured with benchmarks/demo_methods.py (each CPU
# preset for the steps the demo calibrates, scored on the test split by a segmenter trained on
# the same scenes, and by SWD): pix2pix_cpu reached mIoU 65.8% (real images 76.9%), SWD 63.1 in
# 1656 steps; spade_cpu mIoU 50.3%, SWD 69.8 in 1381 steps, smoother but blurrier.
DEMO_PRESET = "pix2pix_cpu"
DEMO_SIZE = 128
DEMO_COUNT = 400
DEMO_SECONDS = 270.0      # training budget: with data and pages, about five minutes in all
MIN_STEPS = 200


def steps_for_budget(config: Config, seconds: float) -> int:
    """How many steps of ``config`` fit in ``seconds`` on this machine, measured on a few
    real iterations (capped by the preset's own ``max_steps``)."""
    import tempfile

    import torch

    from condsynth.bench import make_train_iteration, median_seconds
    from condsynth.data.factory import open_dataset
    from condsynth.registry import build_method
    from condsynth.runtime import resolve_device
    from condsynth.train import resolve_optimizers, to_device

    device = resolve_device(config.train.device)
    with torch.random.fork_rng(devices=[]):
        method = build_method(config).to(device)
        resolve_optimizers(config, method)
        dataset = open_dataset(config, phase="train", train=True,
                               size_multiple=method.size_multiple())
        items = [dataset[i % len(dataset)] for i in range(config.train.batch_size)]
        batch = to_device(torch.utils.data.default_collate(items), device)
        with tempfile.TemporaryDirectory() as tmp:
            iteration = make_train_iteration(method, copy.deepcopy(config), batch, device,
                                             Path(tmp), compile=False)
            per_step = median_seconds(iteration, 4, 1, device)
    # 15% for data loading, sample pages and checkpoints.
    return max(MIN_STEPS, min(config.train.max_steps, int(seconds / (per_step * 1.15))))


def run_demo(out: Path, method: str | None = None, steps: int | None = None,
             size: int | None = None, count: int | None = None, device: str | None = None,
             progress: bool = True, overrides: list[str] = ()) -> Path:
    """Make data in ``out/data``, train into ``out/run``; returns the samples page."""
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
    raw = load_preset_raw(DEMO_PRESET if method is None else f"{method}_cpu")
    settings = [f"data.root={json.dumps(str(data_dir))}", f"data.load_size={size}",
                f"data.crop_size={size}"]
    if steps is not None:
        settings.append(f"train.max_steps={steps}")
    if device:
        settings.append(f"train.device={device}")
    settings += list(overrides)
    config = prepare_config(parse_config(apply_overrides(raw, settings), where="demo"))
    if steps is None:
        config.train.max_steps = steps_for_budget(config, DEMO_SECONDS)
    run_dir = out / "run"
    if (run_dir / "config.yaml").is_file():
        shutil.rmtree(run_dir)            # a previous demo's run: start afresh
    print(f"training {config.method} for {config.train.max_steps} steps into {run_dir}")
    train(config, run_dir, resume=False, progress=progress)
    return run_dir / "index.html"
