"""`condsynth bench` reports what it promises (a smoke test of the tool, not a timing test)."""

from __future__ import annotations

import json

import pytest
import torch

import condsynth
from condsynth import bench
from condsynth.cli import main

TINY = ["model.ngf=8", "model.ndf=8", "model.num_downs=5", "label.num_classes=5"]


@pytest.fixture(autouse=True)
def small_yardstick(monkeypatch):
    real = bench.yardstick_gflops
    monkeypatch.setattr(bench, "yardstick_gflops", lambda: real(size=256, reps=3, warmup=1))


def test_json_report_has_the_promised_keys(capsys):
    assert main(["bench", "--method", "pix2pix", "--size", "32x32", "--batch", "2",
                 "--train-iters", "1", "--infer-iters", "1", "--json", *TINY]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("train_iter_s", "infer_s", "peak_rss_mb", "params", "gflops",
                "yardstick_gflops", "yardstick_train_gflops", "precision", "batch", "size",
                "channels_last", "compile"):
        assert key in report, key
    assert report["size"] == [32, 32] and report["batch"] == 2
    assert report["gflops"] > 0 and report["train_iter_s"] > 0
    assert report["params"]["generator"] > 0


def test_bf16_fast_path_reports_psnr_against_fp32(capsys):
    assert main(["bench", "--method", "pix2pix", "--size", "32x32", "--precision", "bf16",
                 "--channels-last", "--skip-train", "--infer-iters", "1", "--json",
                 *TINY, "model.test_time_noise=false"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 20 < report["psnr_vs_fp32_db"] < 200
    assert "train_iter_s" not in report


def test_bad_size_is_a_clear_error(capsys):
    assert main(["bench", "--size", "256by256"]) == 2
    assert "is not HxW" in capsys.readouterr().err


def test_fresh_batch_norm_gets_running_statistics_before_timing():
    from condsynth.registry import build_method
    from tests.tiny import tiny_batch, tiny_config

    model = build_method(tiny_config("spade"))       # SPADE's default norm is batch norm
    batch = tiny_batch("spade")
    layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert layers and all(float(m.running_var.min()) == 1.0 for m in layers)
    momenta = [m.momentum for m in layers]
    assert bench.calibrate_batch_norm(model, lambda: model.forward_generator(batch)) == len(layers)
    assert not model.generator.training
    assert all(float((m.running_var - 1).abs().max()) > 1e-3 for m in layers)
    assert [m.momentum for m in layers] == momenta
    # already calibrated (or trained) layers are left alone
    assert bench.calibrate_batch_norm(model, lambda: model.forward_generator(batch)) == 0


def test_bench_of_a_trained_run_uses_its_weights(scenes, tmp_path, capsys):
    from condsynth.train import prepare_config, train
    from tests.tiny import tiny_config

    run = tmp_path / "run"
    train(prepare_config(tiny_config("pix2pix", extra=[f"data.root={scenes}",
                                                       "label.num_classes=null",
                                                       "train.max_steps=2"])), run,
          progress=False)
    assert main(["bench", "--run", str(run), "--size", "32x32", "--precision", "bf16",
                 "--skip-train", "--infer-iters", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == str(run) and report["method"] == "pix2pix"
    assert report["params"]["generator"] == sum(
        p.numel() for p in condsynth.load(run).generator.parameters())
    assert 10 < report["snr_vs_fp32_db"] < report["psnr_vs_fp32_db"]
    assert main(["bench", "--run", str(run), "model.ngf=4"]) == 2
    assert "drop --config/overrides" in capsys.readouterr().err
