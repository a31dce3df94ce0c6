"""Every registered method trains through the one loop on data of its condition kind, and
resumes exactly (networks, optimizers and method state); the loop's batch plan is a function
of (seed, step), also when the batch size changes by step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from condsynth import checkpoint
from condsynth.registry import available_methods, build_method
from condsynth.train import Distributed, ResumableBatches, prepare_config, train
from tests.tiny import SKETCH_AND_ATTRIBUTES, tiny_config
from tests.toolbox.conftest import write_attribute_table, write_class_folders

METHODS = available_methods()


def data_for(name: str, scenes: Path, tmp: Path) -> list[str]:
    """Overrides that point a method's tiny config at tiny data of its condition kind."""
    kind = tiny_config(name).condition.kind
    if tiny_config(name).data.layout == "normals":   # (image, normals) pairs of 3D rooms
        from condsynth.data.scenes3d import write_dataset

        write_dataset(tmp / "rooms", 4, 32, seed=0, test_count=1, progress=False)
        return [f"data.root={tmp / 'rooms'}"]
    if name in SKETCH_AND_ATTRIBUTES:              # an attribute table, sketches drawn from it
        return [f"data.root={write_attribute_table(tmp / 'attributes', 4)}",
                "data.line_extraction=xdog"]
    if kind == "label_map":
        return [f"data.root={scenes}", "condition.num_classes=null"]
    if kind == "image":                            # sketches drawn from the scenes' photos
        return [f"data.root={scenes / 'train_img'}", "data.layout=sketch",
                "data.line_extraction=xdog_random"]
    root = write_class_folders(tmp / "classes", {"train": 4})
    return [f"data.root={root}", "data.crop_size=16", "data.load_size=16"] + (
        ["condition.num_classes=null"] if kind == "class" else [])


def saved(run: Path) -> dict[str, torch.Tensor]:
    out = {}
    for path in sorted(run.glob("*.safetensors")):
        out.update({f"{path.stem}.{k}": v for k, v in load_file(path).items()})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_resume_is_exact_for_every_method(name, scenes, tmp_path):
    extra = data_for(name, scenes, tmp_path) + ["train.max_steps=4", "train.checkpoint_every=100",
                                                "train.sample_every=100"]
    train(prepare_config(tiny_config(name, extra=extra)), tmp_path / "full", progress=False)
    train(prepare_config(tiny_config(name, extra=extra)), tmp_path / "split", progress=False,
          stop_at=2)
    resumed = train(checkpoint.read_config(tmp_path / "split"), tmp_path / "split", resume=True,
                    progress=False)
    assert resumed.step == 4
    full, split = saved(tmp_path / "full"), saved(tmp_path / "split")
    assert full.keys() == split.keys()
    for key in full:
        assert torch.equal(full[key], split[key]), key
    assert (tmp_path / "full" / "index.html").is_file()


def test_method_state_is_saved_and_may_grow(tmp_path):
    config = tiny_config("dcgan")
    method = build_method(config)
    method.register_buffer("history", torch.zeros(0, 3))
    method.history = torch.arange(15.0).reshape(5, 3)           # filled while training
    checkpoint.write_checkpoint(tmp_path, config, method.networks(), 1,
                                method_state=method.method_state())
    fresh = build_method(config)
    fresh.register_buffer("history", torch.zeros(0, 3))
    checkpoint.load_method(tmp_path, fresh)
    assert torch.equal(fresh.history, method.history)
    other = build_method(config)                                  # keeps no such state
    with pytest.raises(Exception, match="does not keep"):
        checkpoint.load_method(tmp_path, other)


def old_plan(n: int, batch: int, seed: int, epoch: int) -> list[list[int]]:
    """The batch plan of format-1 runs (a fixed batch size, drop-last epochs)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g)
    steps = max(1, n // batch)
    if steps * batch > n:
        order = order.repeat(math.ceil(steps * batch / n))
    order = order[:steps * batch].tolist()
    return [order[i:i + batch] for i in range(0, len(order), batch)]


@pytest.mark.parametrize(("n", "batch"), [(10, 3), (12, 4), (2, 3), (7, 1)])
def test_a_fixed_batch_size_draws_what_earlier_versions_drew(n, batch):
    plan = ResumableBatches(n, batch, seed=5, dist_info=Distributed())
    expected = [b for epoch in range(4) for b in old_plan(n, batch, 5, epoch)]
    drawn, step = [], 0
    while len(drawn) < len(expected):
        epoch, offset = plan.position(step)
        chunk = plan.epoch_batches(epoch, offset, step)
        drawn += chunk
        step += len(chunk)
    assert drawn[:len(expected)] == expected


def test_a_changing_batch_size_resumes_at_any_step():
    sizes = lambda step: 2 if step < 5 else 4 if step < 9 else 3      # noqa: E731
    plan = ResumableBatches(11, sizes, seed=1, dist_info=Distributed())

    def batches_from(start: int, count: int) -> list[list[int]]:
        out, step = [], start
        while len(out) < count:
            epoch, offset = plan.position(step)
            chunk = plan.epoch_batches(epoch, offset, step)
            out += chunk
            step += len(chunk)
        return out[:count]

    straight = batches_from(0, 20)
    assert [len(b) for b in straight] == [sizes(s) for s in range(20)]
    for start in (1, 4, 5, 7, 13):
        assert batches_from(start, 20 - start) == straight[start:]
