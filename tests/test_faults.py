"""Fault injection (slow, minutes: ``pytest tests/test_faults.py -s``): kill -9 at random
moments of training and checkpointing, a full disk at every file of a checkpoint, readers in
other processes during training, two trainers. Every trial must end with a loadable, finite
run that resumes exactly (the same weights as a run that was never interrupted).

The numbers of the README's Reliability table come from here (printed with ``-s``).
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from condsynth import checkpoint
from condsynth.api import load
from condsynth.errors import CheckpointError
from condsynth.train import train
from tests.test_checkpoint import checkpoint_steps
from tests.test_train import assert_same_weights, weights

pytestmark = pytest.mark.slow

STEPS = 10
# A constant learning rate (decay_start 1), so that a run stopped early and resumed with
# more steps has the straight run's schedule.
ARGS = ["--size", "32", "--batch-size", "2", "--quiet", "--max-steps", str(STEPS),
        "model.ngf=8", "model.ndf=8", "model.num_downs=5", "train.sample_every=1000",
        "train.tensorboard=false", "train.checkpoint_every=1", "train.seed=3",
        "train.decay_start=1.0"]


def trainer(scenes, run, *extra):
    return subprocess.Popen([sys.executable, "-m", "condsynth", "train", "--method", "pix2pix",
                             "--data", str(scenes), "--run", str(run), *ARGS, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def straight(scenes, tmp_path_factory):
    """The reference: the same run, never interrupted."""
    run = tmp_path_factory.mktemp("straight") / "run"
    proc = trainer(scenes, run)
    assert proc.wait(300) == 0, proc.stderr.read().decode()
    return weights(run)


def assert_loadable_and_finite(run):
    method = load(run, device="cpu")
    for name, value in method.state_dict().items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), name
    steps = checkpoint.read_run(run, checkpoint_steps)
    assert len(set(steps.values())) == 1, steps
    return steps["train_state"]


def resume_to_the_end(run):
    config = checkpoint.read_config(run)
    config.train.max_steps = STEPS
    result = train(config, run, resume=True, progress=False)
    assert result.step == STEPS


def test_kill_9_at_random_moments(scenes, straight, tmp_path):
    rng = random.Random(20261202)
    outcomes = []
    for trial in range(20):
        run = tmp_path / f"kill{trial}"
        proc = trainer(scenes, run)
        deadline = time.time() + 120
        while not (run / checkpoint.TRAIN_STATE).exists() and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid_commit = (run / checkpoint.STAGING / checkpoint.COMPLETE).exists()
        staged = (run / checkpoint.STAGING).exists()
        kept = assert_loadable_and_finite(run)
        resume_to_the_end(run)
        assert_same_weights(straight, weights(run))
        outcomes.append((kept, "finished" if proc.returncode == 0 else
                         "mid-commit" if mid_commit else "staging" if staged else "between"))
    print("\nkill -9 trials (step kept, where the kill landed):", outcomes)
    assert len(outcomes) == 20


def test_full_disk_at_every_file_of_a_checkpoint(scenes, straight, tmp_path, monkeypatch):
    names = []
    for trial in range(8):
        run = tmp_path / f"full{trial}"
        proc = trainer(scenes, run, "--max-steps", "3")
        assert proc.wait(300) == 0
        real = checkpoint._fsync_write
        calls = []

        def full_disk(path, data, trial=trial, real=real, calls=calls):
            calls.append(path.name)
            if len(calls) == trial + 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            real(path, data)

        monkeypatch.setattr(checkpoint, "_fsync_write", full_disk)
        config = checkpoint.read_config(run)
        config.train.max_steps = STEPS
        try:
            train(config, run, resume=True, progress=False)
            names.append("(none)")
        except CheckpointError as err:
            assert "No space left on device" in str(err)
            names.append(calls[-1])
        monkeypatch.undo()
        kept = assert_loadable_and_finite(run)
        assert kept in (3, 4)
        resume_to_the_end(run)
        assert_same_weights(straight, weights(run))
    print("\nENOSPC at:", names)


def test_readers_in_other_processes_and_a_second_trainer(scenes, straight, tmp_path):
    run = tmp_path / "run"
    proc = trainer(scenes, run, "--max-steps", str(STEPS))
    # A reader starts reading once the trainer has made the run folder.
    reader = ("import os, sys, time; from condsynth.api import load\n"
              "n = 0\nend = time.time() + 60\n"
              "while time.time() < end:\n"
              "    if not os.path.isdir(sys.argv[1]):\n        time.sleep(0.01); continue\n"
              "    try:\n        load(sys.argv[1], device='cpu'); n += 1\n"
              "    except Exception as err:\n"
              "        if 'is missing' not in str(err) and 'not exist' not in str(err): raise\n"
              "    if n and not __import__('os').path.exists(sys.argv[2]): break\n"
              "print(n)")
    flag = tmp_path / "running"
    flag.write_text("")
    readers = [subprocess.Popen([sys.executable, "-c", reader, str(run), str(flag)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    while not (run / checkpoint.TRAIN_STATE).exists() and proc.poll() is None:
        time.sleep(0.01)
    second = trainer(scenes, run, "--resume")
    second_err = second.communicate(timeout=120)[1].decode()
    assert proc.wait(300) == 0, proc.stderr.read().decode()
    flag.unlink()
    answers = [r.communicate(timeout=120) for r in readers]
    assert all(r.returncode == 0 for r in readers), [err.decode()[-2000:] for _, err in answers]
    reads = [int(out or 0) for out, _ in answers]
    assert second.returncode == 2 and "being trained by another process" in second_err
    assert_same_weights(straight, weights(run))
    print(f"\nreaders beside the trainer: {reads} loads, all consistent; second trainer: "
          f"{second_err.strip()}")
