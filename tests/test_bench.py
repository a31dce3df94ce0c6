"""`condsynth bench` reports what it promises (a smoke test of the tool, not a timing test)."""

from __future__ import annotations

import json

import pytest

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
                "yardstick_gflops", "precision", "batch", "size", "channels_last", "compile"):
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
