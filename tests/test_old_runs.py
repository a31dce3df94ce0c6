"""Run directories written by earlier condsynth versions (format 1: the condition section was
called ``label``, and ``num_classes: 0`` meant an image condition) still load, synthesize the
same pixels and resume. The fixtures are tiny runs made by that version, with an output it
generated from a recorded input under a fixed seed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from condsynth import checkpoint
from condsynth.api import load
from condsynth.cli import main as cli_main

RUNS = Path(__file__).parent / "fixtures" / "runs_v1"


def assert_same_pixels(out: torch.Tensor, run: Path) -> None:
    """The recorded output, to float32 rounding: the same weights and input give the same bits
    on one CPU, but kernels for another instruction set (AVX2 vs AVX-512) sum in another order
    and differ in the last bits (3e-8 seen)."""
    expected = torch.from_numpy(np.load(run / "expected_output.npy"))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_a_format_1_label_map_run_loads_and_generates_the_same_pixels():
    run = RUNS / "pix2pix_v1"
    config = checkpoint.read_config(run)
    assert config.condition.kind == "label_map" and config.condition.num_classes == 11
    assert config.condition.use_instance and config.format_version == 2
    method = load(run, device="cpu")
    label = torch.from_numpy(np.load(run / "expected_input_label.npy"))
    instance = torch.from_numpy(np.load(run / "expected_input_instance.npy"))
    torch.manual_seed(7)
    out = method.generate(label, instance=instance)
    assert_same_pixels(out, run)


def test_a_format_1_image_condition_run_becomes_kind_image():
    run = RUNS / "autopainter_v1"
    config = checkpoint.read_config(run)
    assert (config.condition.kind, config.condition.image_channels) == ("image", 1)
    method = load(run, device="cpu")
    sketch = torch.from_numpy(np.load(run / "expected_input_sketch.npy"))
    torch.manual_seed(7)
    out = method.generate(sketch)
    assert_same_pixels(out, run)


def test_a_format_1_run_resumes(tmp_path, scenes):
    run = tmp_path / "run"
    shutil.copytree(RUNS / "pix2pix_v1", run)
    assert cli_main(["train", "--run", str(run), "--resume", "--data", str(scenes),
                     "--max-steps", "3", "--quiet"]) == 0
    state = checkpoint.read_train_state(run)
    assert state["step"] == 3
    assert "condition:" in (run / "config.yaml").read_text()     # saved in the new format
