"""Non-finite weights are never saved over a good checkpoint, never loaded, and the message
that stops the run says what is true."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from condsynth import checkpoint
from condsynth import train as train_module
from condsynth.api import load
from condsynth.checkpoint import NonFiniteError
from condsynth.cli import main
from condsynth.errors import CondsynthError
from condsynth.registry import load_config
from condsynth.train import train
from tests.test_train import scenes_config


def test_divergence_keeps_the_finite_checkpoint_and_says_so(scenes, tmp_path):
    run = tmp_path / "run"
    train(scenes_config(scenes, ["train.max_steps=2"]), run, progress=False)
    config = load_config(run / "config.yaml", ["train.max_steps=8", "train.lr_g=1e6",
                                               "train.lr_d=1e6", "train.checkpoint_every=1"])
    with pytest.raises(NonFiniteError) as err:
        train(config, run, resume=True, progress=False)
    message = str(err.value)
    kept = checkpoint.read_train_state(run)["step"]
    failed = int(re.search(r"by step (\d+)", message).group(1))
    assert 2 <= kept < failed                          # checkpoints up to the divergence
    assert f"of step {kept}, is unchanged" in message and "--resume" in message
    method = load(run, device="cpu")                     # the kept checkpoint is finite
    assert all(bool(torch.isfinite(t).all()) for t in method.state_dict().values()
               if t.is_floating_point())


def test_divergence_before_any_checkpoint_says_there_is_none(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--method", "pix2pix", "--data", str(scenes), "--run", str(run),
                 "--size", "32", "--batch-size", "2", "--max-steps", "6", "--quiet",
                 "model.ngf=8", "model.ndf=8", "train.lr_g=1e6", "train.lr_d=1e6",
                 "train.checkpoint_every=6", "train.tensorboard=false"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "non-finite" in err and "holds no checkpoint yet" in err and "--overwrite" in err
    assert not (run / "generator.safetensors").exists()


def test_a_nan_loss_on_step_one_does_not_claim_a_checkpoint(scenes, tmp_path, monkeypatch):
    def nan_step(*args, **kwargs):
        return {"g_gan": torch.tensor(float("nan"))}

    monkeypatch.setattr(train_module, "train_step", nan_step)
    with pytest.raises(CondsynthError, match="holds no checkpoint yet") as err:
        train(scenes_config(scenes), tmp_path / "run", progress=False)
    assert "intact" not in str(err.value)


def test_runs_with_non_finite_weights_are_refused(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    train(scenes_config(scenes, ["train.max_steps=2"]), run, progress=False)
    tensors = load_file(run / "generator.safetensors")
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("inf"))
    save_file(tensors, run / "generator.safetensors", metadata={"step": "2"})
    with pytest.raises(NonFiniteError, match=name):
        load(run, device="cpu")
    label = next((scenes / "test_label").iterdir())
    out = tmp_path / "out.png"
    code = main(["synthesize", str(run), "--label", str(label), "--instance",
                 str(scenes / "test_inst" / label.name), "--out", str(out)])
    assert code == 2 and "non-finite" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(NonFiniteError):
        checkpoint.write_checkpoint(tmp_path / "other", load_config(run / "config.yaml"),
                                    {"generator": torch.nn.Linear(1, 1).requires_grad_(False)
                                     .apply(lambda m: m.weight.fill_(float("nan")))}, 1)
    assert not (tmp_path / "other").exists()
