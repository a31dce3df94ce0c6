"""Run directories under concurrency: readers beside a trainer, one trainer per run,
``--overwrite``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open

from condsynth import checkpoint
from condsynth.api import load
from condsynth.errors import CheckpointError
from condsynth.train import train
from tests.test_train import scenes_config

TINY_CLI = ["--size", "32", "--batch-size", "2", "--quiet", "model.ngf=8", "model.ndf=8",
            "model.num_downs=5", "train.sample_every=1000", "train.tensorboard=false"]


def listing(run):
    """Every path under ``run`` with its size and modification time."""
    return {str(p.relative_to(run)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(run.rglob("*"))}


def checkpoint_steps(view):
    """The step recorded in every network file and in the train state of a view."""
    steps = {}
    for path in view.glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            steps[path.name] = int(f.metadata()["step"])
    steps["train_state"] = int(checkpoint.read_train_state(view)["step"])
    return steps


def test_reader_of_a_half_committed_checkpoint_changes_nothing(scenes, tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = scenes_config(scenes)
    train(config, run, progress=False)
    method = load(run, device="cpu")
    with torch.no_grad():
        for p in method.networks()["generator"].parameters():
            p.add_(1.0)
    moved = []
    real_replace = os.replace

    def dying_replace(src, dst):
        if len(moved) == 2:                              # config and discriminator moved
            raise OSError("simulated crash in the middle of the commit")
        moved.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", dying_replace)
    with pytest.raises(CheckpointError, match="simulated crash"):
        checkpoint.write_checkpoint(run, config, method.networks(), step=99,
                                    train_state={"step": 99})
    monkeypatch.undo()
    before = listing(run)
    steps = checkpoint.read_run(run, checkpoint_steps)
    assert set(steps.values()) == {99}, steps            # one consistent, newest set
    loaded = load(run, device="cpu")
    checkpoint.read_config(run)
    for key, value in method.networks()["generator"].state_dict().items():
        assert torch.equal(value, loaded.networks()["generator"].state_dict()[key])
    assert listing(run) == before


def test_readers_beside_a_trainer_that_checkpoints_every_step(scenes, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "condsynth", "train", "--method", "pix2pix", "--data",
           str(scenes), "--run", str(run), "--max-steps", "25", *TINY_CLI,
           "train.checkpoint_every=1"]
    trainer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reads = 0
    try:
        while trainer.poll() is None:
            if not (run / checkpoint.CONFIG).exists():
                time.sleep(0.01)
                continue
            steps = checkpoint.read_run(run, checkpoint_steps)
            assert len(set(steps.values())) == 1, f"a mixed checkpoint was read: {steps}"
            load(run, device="cpu")
            reads += 1
    finally:
        if trainer.poll() is None:
            trainer.kill()
        trainer.wait()
    assert trainer.returncode == 0, trainer.stderr.read().decode()[-2000:]
    assert reads >= 3
    assert checkpoint.read_train_state(run)["step"] == 25
    assert not (run / checkpoint.STAGING).exists()


def test_a_second_trainer_is_refused_and_a_killed_one_leaves_no_lock(scenes, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from condsynth.checkpoint import claim_run; "
         f"claim_run({str(run)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(CheckpointError, match=f"another process \\(pid {holder.pid}\\)"):
            train(scenes_config(scenes), run, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = train(scenes_config(scenes), run, progress=False)   # the OS dropped the lock
    assert result.step == 4


def test_overwrite_leaves_nothing_of_the_old_run(scenes, tmp_path):
    run = tmp_path / "run"
    train(scenes_config(scenes, ["train.ema=0.9", "train.max_steps=4"]), run, progress=False)
    assert (run / "generator_ema.safetensors").is_file()
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(scenes_config(scenes, ["train.max_steps=2"]), run, progress=False)
    train(scenes_config(scenes, ["train.max_steps=2"]), run, progress=False, overwrite=True)
    assert not (run / "generator_ema.safetensors").exists()
    steps = [json.loads(line)["step"] for line in (run / "losses.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert not list((run / "samples").glob("step0000004_*"))
    assert checkpoint.read_config(run).train.ema == 0
