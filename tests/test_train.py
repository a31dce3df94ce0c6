"""The training loop: exact resume, atomic checkpoints, EMA, samples page, mixed precision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from condsynth import checkpoint
from condsynth.api import load
from condsynth.errors import CheckpointError, DataError
from condsynth.train import (
    Distributed,
    ResumableBatches,
    epoch_lr_factor,
    lr_factor,
    prepare_config,
    train,
)
from tests.tiny import tiny_config


def scenes_config(scenes, extra=()):
    config = tiny_config("pix2pix", extra=[f"data.root={scenes}", "label.num_classes=null",
                                           *extra])
    return prepare_config(config)


def weights(run_dir):
    out = {}
    for name in ("generator", "discriminator"):
        out.update({f"{name}.{k}": v for k, v in
                    load_file(run_dir / f"{name}.safetensors").items()})
    return out


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a
                if a[k].is_floating_point())
    assert worst <= 1e-6, f"weights differ by {worst}"


def test_lr_schedule_is_constant_then_linear():
    assert lr_factor(0, 100, 0.5) == 1.0
    assert lr_factor(49, 100, 0.5) == 1.0
    assert lr_factor(75, 100, 0.5) == pytest.approx(0.5)
    assert lr_factor(100, 100, 0.5) == 0.0


def test_epoch_schedule_is_the_official_niter_and_niter_decay():
    # niter 2, niter_decay 4: epochs 1-3 (0-based 0-2) at the full rate, then the rate drops
    # by a quarter after each epoch, so the last epoch trains at 1/4.
    factors = [epoch_lr_factor(e, 2, 4) for e in range(7)]
    assert factors == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert epoch_lr_factor(50, 100, 0) == 1.0          # no decay epochs: constant


def test_serial_batches_take_the_files_in_order():
    plan = ResumableBatches(5, 2, seed=3, dist_info=Distributed(), shuffle=False)
    assert plan.epoch_batches(0, 0, 0) == [[0, 1], [2, 3]]
    assert plan.epoch_batches(1, 0, 2) == [[0, 1], [2, 3]]
    shuffled = ResumableBatches(5, 2, seed=3, dist_info=Distributed())
    assert shuffled.epoch_batches(0, 0, 0) != shuffled.epoch_batches(1, 0, 2)


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(scenes, tmp_path):
    config = scenes_config(scenes, ["train.max_steps=6", "train.checkpoint_every=100"])
    train(config, tmp_path / "full", progress=False)
    train(scenes_config(scenes, ["train.max_steps=6", "train.checkpoint_every=100"]),
          tmp_path / "split", progress=False, stop_at=3)
    assert checkpoint.read_train_state(tmp_path / "split")["step"] == 3
    resumed = checkpoint.read_config(tmp_path / "split")
    result = train(resumed, tmp_path / "split", resume=True, progress=False)
    assert result.step == 6
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "split"))


@pytest.mark.slow
def test_n_steps_then_resume_to_2n_equals_2n(scenes, tmp_path):
    # Constant learning rate, so that "--max-steps N" and "--max-steps 2N" share a schedule.
    extra = ["train.decay_start=1.0", "train.ema=0.9"]
    train(scenes_config(scenes, ["train.max_steps=8", *extra]), tmp_path / "full",
          progress=False)
    train(scenes_config(scenes, ["train.max_steps=4", *extra]), tmp_path / "split",
          progress=False)
    config = checkpoint.read_config(tmp_path / "split")
    config.train.max_steps = 8
    train(config, tmp_path / "split", resume=True, progress=False)
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "split"))
    ema_full = load_file(tmp_path / "full" / "generator_ema.safetensors")
    ema_split = load_file(tmp_path / "split" / "generator_ema.safetensors")
    assert_same_weights(ema_full, ema_split)


def test_run_directory_contents_and_samples_page(scenes, tmp_path):
    train(scenes_config(scenes), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "generator.safetensors", "discriminator.safetensors",
                 "train_state.pt", "index.html", "losses.jsonl"):
        assert (run / name).is_file(), name
    page = (run / "index.html").read_text()
    assert "samples/generated_0.png" in page and "samples/real_0.png" in page
    assert "samples/condition_0.png" in page and "training finished" in page
    assert not (run / checkpoint.STAGING).exists()
    method = load(run, device="cpu")
    label = torch.zeros(1, 32, 32, dtype=torch.long)
    assert method.generate(label, instance=label).shape == (1, 3, 32, 32)


def test_crash_before_commit_keeps_previous_checkpoint(scenes, tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = scenes_config(scenes)
    train(config, run, progress=False)
    before = weights(run)
    method = load(run, device="cpu")
    with torch.no_grad():
        for p in method.networks()["generator"].parameters():
            p.add_(1.0)
    real_write = checkpoint._fsync_write

    def dying_write(path, data):
        if path.name == checkpoint.COMPLETE:
            raise OSError("simulated crash before the checkpoint was complete")
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "_fsync_write", dying_write)
    with pytest.raises(CheckpointError, match="simulated crash"):
        checkpoint.write_checkpoint(run, config, method.networks(), step=99)
    monkeypatch.undo()
    assert_same_weights(before, weights(run))           # nothing moved yet
    assert not (run / checkpoint.STAGING).exists()       # the incomplete files are gone
    load(run, device="cpu")


@pytest.mark.slow
def test_crash_during_commit_is_rolled_forward(scenes, tmp_path, monkeypatch):
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
        if moved:
            raise OSError("simulated crash after the first file was moved")
        moved.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", dying_replace)
    with pytest.raises(CheckpointError, match="simulated crash"):
        checkpoint.write_checkpoint(run, config, method.networks(), step=99)
    monkeypatch.undo()
    assert (run / checkpoint.STAGING / checkpoint.COMPLETE).exists()
    loaded = load(run, device="cpu")                     # sees the staged checkpoint...
    for key, value in method.networks()["generator"].state_dict().items():
        assert torch.equal(value, loaded.networks()["generator"].state_dict()[key])
    assert (run / checkpoint.STAGING).exists()           # ...without changing the run
    checkpoint.claim_run(run, resume=True).release()     # the next trainer rolls it forward
    assert not (run / checkpoint.STAGING).exists()
    committed = load_file(run / "generator.safetensors")
    for key, value in method.networks()["generator"].state_dict().items():
        assert torch.equal(value, committed[key])


@pytest.mark.slow
def test_kill_at_any_moment_leaves_a_loadable_checkpoint(scenes, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "condsynth", "train", "--method", "pix2pix",
           "--data", str(scenes), "--run", str(run), "--max-steps", "100000", "--size", "32",
           "--quiet", "model.ngf=8", "model.ndf=8", "model.num_downs=5",
           "train.checkpoint_every=1", "train.sample_every=1000", "train.tensorboard=false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (run / "train_state.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        time.sleep(1.0)                                  # mid-way through later checkpoints
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    method = load(run, device="cpu")
    state = checkpoint.read_train_state(run)
    assert state["step"] >= 1
    assert method.generate(torch.zeros(1, 32, 32, dtype=torch.long),
                           instance=torch.zeros(1, 32, 32, dtype=torch.long)).isfinite().all()


def test_resume_without_state_is_a_clear_error(tmp_path):
    (tmp_path / "config.yaml").write_text("method: pix2pix\n")
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        checkpoint.read_train_state(tmp_path)


def test_bf16_mixed_precision_trains(scenes, tmp_path):
    result = train(scenes_config(scenes, ["train.precision=bf16", "train.max_steps=2"]),
                   tmp_path / "run", progress=False)
    assert result.step == 2
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())


@pytest.mark.parametrize("method", ["pix2pix", "spade"])
def test_a_sample_pass_changes_no_parameter_and_no_buffer(scenes, tmp_path, method):
    from condsynth.registry import build_method
    from condsynth.train import make_sample_set, write_samples
    from tests.tiny import tiny_config

    # pix2pix samples with test-time noise: its generator runs in training mode.
    config = prepare_config(tiny_config(method, extra=[f"data.root={scenes}",
                                                       "condition.num_classes=null"]))
    model = build_method(config).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    samples = make_sample_set(config, model)
    write_samples(tmp_path, model, samples, step=1, config=config)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"sampling changed {changed[:5]}"
    assert model.training and (tmp_path / "samples" / "generated_0.png").is_file()


def test_samples_run_on_rank_local_copies_without_synchronized_batch_norm(scenes, tmp_path,
                                                                          monkeypatch):
    from torch import nn

    from condsynth.registry import build_method
    from condsynth.train import make_sample_set, write_samples
    from tests.tiny import tiny_config

    config = prepare_config(tiny_config("pix2pix", extra=[f"data.root={scenes}",
                                                          "condition.num_classes=null"]))
    model = build_method(config).train()
    # As on CUDA under torchrun: a forward of this in training mode would be a collective.
    model.generator = nn.SyncBatchNorm.convert_sync_batchnorm(model.generator)
    synced = model.generator

    def collective(*args, **kwargs):
        raise AssertionError("a synchronized batch norm ran: rank 0 would wait for ever")

    monkeypatch.setattr(nn.SyncBatchNorm, "forward", collective)
    write_samples(tmp_path, model, make_sample_set(config, model), step=1, config=config)
    assert model.generator is synced
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.generator.modules())


def _scenes_copy(scenes, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    return data


def test_unreadable_files_are_found_before_training(scenes, tmp_path):
    data = _scenes_copy(scenes, tmp_path)
    bad = sorted((data / "train_label").iterdir())[5]
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=f"{bad.name}.*Nothing was trained"):
        train(scenes_config(data, ["train.checkpoint_every=100"]), tmp_path / "run",
              progress=False)
    assert not (tmp_path / "run" / "losses.jsonl").exists()


def test_a_file_that_fails_mid_run_stops_it_with_a_checkpoint(scenes, tmp_path):
    data = _scenes_copy(scenes, tmp_path)
    bad = sorted((data / "train_img").iterdir())[5]
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])            # the header reads; the pixels do not
    run = tmp_path / "run"
    config = scenes_config(data, ["train.checkpoint_every=100", "train.max_steps=8"])
    with pytest.raises(DataError) as err:
        train(config, run, progress=False)
    message = str(err.value)
    assert bad.name in message and "--resume" in message and "Traceback" not in message
    saved = checkpoint.read_train_state(run)["step"]
    assert f"Training stopped at step {saved}" in message
    bad.write_bytes(good)
    result = train(checkpoint.read_config(run), run, resume=True, progress=False)
    assert result.step == 8


def test_sample_pass_after_a_training_step_with_spectral_norm(scenes, tmp_path):
    # A training forward leaves spectral norm's computed weight on the module (a tensor no
    # copy can take): samples still run, and still change nothing.
    from condsynth.registry import build_method
    from condsynth.train import make_sample_set, write_samples
    from tests.tiny import tiny_batch, tiny_config

    config = prepare_config(tiny_config("spade", extra=[f"data.root={scenes}",
                                                        "condition.num_classes=null"]))
    model = build_method(config).train()
    model.forward_generator(tiny_batch("spade") | {"label": torch.zeros(2, 32, 32,
                                                                         dtype=torch.long)})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    write_samples(tmp_path, model, make_sample_set(config, model), step=1, config=config)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
