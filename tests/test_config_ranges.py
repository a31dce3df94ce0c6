"""Values out of range are configuration errors with the key, the value and the range: never
a hang, a traceback or a run that silently trains nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from condsynth.cli import main
from condsynth.errors import ConfigError
from condsynth.registry import default_config, merged

TINY = ["--size", "32", "--quiet", "model.ngf=8", "model.ndf=8", "model.num_downs=5",
        "train.tensorboard=false"]


@pytest.mark.parametrize("argv, key, rule", [
    (["--batch-size", "0"], "train.batch_size", "at least 1"),
    (["--max-steps", "-5"], "train.max_steps", "at least 1"),
    (["train.checkpoint_every=0"], "train.checkpoint_every", "at least 1"),
    (["train.log_every=0"], "train.log_every", "at least 1"),
    (["train.num_samples=0"], "train.num_samples", "at least 1"),
    (["train.lr_g=-0.001"], "train.lr_g", "above 0"),
    (["train.beta1=1.5"], "train.beta1", "below 1"),
    (["train.seed=-1"], "train.seed", "at least 0"),
    (["data.aspect_ratio=0"], "data.aspect_ratio", "above 0"),
    (["model.ngf=0"], "model.ngf", "at least 1"),
])
def test_out_of_range_training_settings_are_clear_errors(scenes, tmp_path, capsys, argv, key,
                                                         rule):
    code = main(["train", "--method", "pix2pix", "--data", str(scenes), "--run",
                 str(tmp_path / "run"), "--max-steps", "2", *TINY, *argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert key in err and rule in err and "out of range" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_size_zero_is_a_clear_error(scenes, tmp_path, capsys):
    assert main(["train", "--method", "pix2pix", "--data", str(scenes), "--run",
                 str(tmp_path / "run"), *TINY, "--size", "0"]) == 2
    assert "data.load_size: 0 is out of range" in capsys.readouterr().err


def test_negative_batch_size_stops_at_once(scenes, tmp_path):
    # It used to spin at 100 % CPU for ever: a subprocess with a deadline.
    proc = subprocess.run([sys.executable, "-m", "condsynth", "train", "--method", "pix2pix",
                           "--data", str(scenes), "--run", str(tmp_path / "run"), *TINY,
                           "--batch-size", "-1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "train.batch_size: -1 is out of range" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ranges_hold_for_overrides_of_a_saved_config():
    with pytest.raises(ConfigError, match="train.decay_start: 2.0 is out of range: it must be "
                       "at least 0 and at most 1"):
        merged(default_config("spade"), ["train.decay_start=2"])
