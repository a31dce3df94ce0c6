"""Distributed training with torchrun: two CPU processes (gloo) end with identical weights,
and a distributed resume continues exactly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


def torchrun(tmp_path, scenes, run, out, steps, mode):
    out.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "0", "--rdzv-endpoint", "127.0.0.1:0", "--rdzv-backend", "c10d",
           str(REPO / "tests" / "distributed_worker.py"), str(scenes), str(run), str(out),
           str(steps), mode]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def assert_equal_states(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point() and "running_" not in key:
            assert torch.allclose(a[key], b[key], atol=1e-6), key


@pytest.mark.distributed
@pytest.mark.slow
def test_two_processes_hold_identical_weights_and_resume_exactly(scenes, tmp_path):
    full = torchrun(tmp_path, scenes, tmp_path / "full", tmp_path / "out_full", 4, "new")
    assert_equal_states(full[0], full[1])
    torchrun(tmp_path, scenes, tmp_path / "split", tmp_path / "out_a", 2, "new")
    split = torchrun(tmp_path, scenes, tmp_path / "split", tmp_path / "out_b", 4, "resume")
    assert_equal_states(split[0], split[1])
    assert_equal_states(full[0], split[0])
