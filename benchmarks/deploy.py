"""The CPU deployment paths, side by side: PyTorch fp32, PyTorch bf16 + channels-last, ONNX
Runtime fp32 and ONNX Runtime int8 (static quantization), at the official configurations of
``compare_official.py`` (batch 1, 256x512, 35 labels + instance edges, random weights).

Speed: each path's median inference time x the 2048^3 matmul yardstick measured around it (work
in "GEMM-GFLOP equivalents", lower is faster), and the speed-up over the official code's fp32
figure in ../shared/BENCHMARKS.md (higher is faster). Quality: PSNR of each path against PyTorch
fp32 on the same inputs; random weights say little about int8, so ``--quality RUN=DATA`` also
measures trained runs on their dataset's test label maps (int8 calibrated on its train split).

    python benchmarks/deploy.py                                   # both configurations
    python benchmarks/deploy.py --only spade --iters 5
    python benchmarks/deploy.py --quality runs/spade=scenes --quality runs/hd=scenes --skip-speed
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from condsynth.api import load
from condsynth.bench import (
    bench_config,
    calibrate_batch_norm,
    psnr,
    random_batch,
    yardstick_gflops,
)
from condsynth.deploy import DeployedModel
from condsynth.export import calibration_feeds, export_method, quantize_int8
from condsynth.registry import build_method

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_official import CONFIGS  # noqa: E402

PATHS = ("torch_fp32", "torch_bf16_cl", "ort_fp32", "ort_int8")


def median_seconds(fn: Callable[[], object], iters: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fast_path(method):
    """The PyTorch fast path as ``condsynth.load(..., precision="bf16", channels_last=True)``
    serves it, on a copy."""
    fast = copy.deepcopy(method)
    fast.to(memory_format=torch.channels_last)
    fast.cast_inference_weights(torch.bfloat16)
    fast.inference_precision = "bf16"
    return fast.eval()


def onnx_paths(method, folder: Path, size: tuple[int, int], feeds) -> dict[str, DeployedModel]:
    """ONNX Runtime fp32 and int8 sessions of ``method`` (int8 calibrated on ``feeds``)."""
    fp32 = export_method(method, folder / "fp32.onnx", size=size)
    int8 = quantize_int8(fp32, folder / "int8.onnx", feeds, "benchmark inputs")
    return {"ort_fp32": DeployedModel(fp32, threads=torch.get_num_threads()),
            "ort_int8": DeployedModel(int8, threads=torch.get_num_threads())}


def speed(name: str, iters: int) -> list[dict]:
    """Every path on one official configuration: seconds, yardstick, speed-up, PSNR."""
    method_name, size, overrides, _, official_infer = CONFIGS[name]
    height, width = (int(v) for v in size.split("x"))
    config = bench_config(method_name, None, overrides)
    torch.manual_seed(0)
    method = build_method(config)
    batch = random_batch(config, 1, height, width, torch.device("cpu"))
    calibrate_batch_norm(method, lambda: method.forward_generator(batch))
    method.eval()
    label, instance = batch["label"], batch["instance"]
    feed = {"label": label.numpy(), "instance": instance.numpy()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runners: dict[str, Callable[[], np.ndarray]] = {
            "torch_fp32": lambda: method.generate(label, instance=instance).numpy()}
        fast = fast_path(method)
        runners["torch_bf16_cl"] = lambda: fast.generate(label, instance=instance).numpy()
        for key, model in onnx_paths(method, Path(tmp), (height, width), [feed]).items():
            runners[key] = lambda model=model: model.run(feed)
        reference = runners["torch_fp32"]()
        for key in PATHS:
            before = yardstick_gflops()
            seconds = median_seconds(runners[key], iters)
            yardstick = statistics.mean([before, yardstick_gflops()])
            work = seconds * yardstick
            rows.append({"config": name, "path": key, "seconds": round(seconds, 4),
                         "yardstick_gflops": round(yardstick, 1),
                         "x_yardstick": round(work, 1),
                         "speedup_vs_official": round(official_infer / work, 2),
                         "psnr_vs_fp32_db": round(psnr(torch.from_numpy(runners[key]()),
                                                       torch.from_numpy(reference)), 2)})
            print(format_speed(rows[-1]), flush=True)
    return rows


def quality(run: str, data: str, count: int) -> list[dict]:
    """PSNR of each path against PyTorch fp32 on a trained run's test label maps."""
    method = load(run, device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_method(method, Path(tmp) / "fp32.onnx")
        probe = DeployedModel(fp32)
        feeds = calibration_feeds(probe, data, count)                  # the train split
        int8 = quantize_int8(fp32, Path(tmp) / "int8.onnx", feeds, data)
        tests = calibration_feeds(probe, data, 10_000, phases=("test",))
        fast = fast_path(method)
        models = {"ort_fp32": probe, "ort_int8": DeployedModel(int8)}
        scores: dict[str, list[float]] = {key: [] for key in PATHS[1:]}
        for feed in tests:
            label = torch.from_numpy(feed["label"])
            instance = torch.from_numpy(feed["instance"]) if "instance" in feed else None
            reference = method.generate(label, instance=instance)
            outputs = {"torch_bf16_cl": fast.generate(label, instance=instance)}
            outputs.update({k: torch.from_numpy(m.run(feed)) for k, m in models.items()})
            for key, output in outputs.items():
                scores[key].append(psnr(output, reference))
        for key, values in scores.items():
            rows.append({"run": run, "method": method.config.method, "path": key,
                         "test_label_maps": len(values),
                         "psnr_mean_db": round(float(np.mean(values)), 2),
                         "psnr_min_db": round(float(np.min(values)), 2)})
            print(f"{run:24s} {key:14s} PSNR vs fp32: mean {rows[-1]['psnr_mean_db']:6.2f} dB, "
                  f"min {rows[-1]['psnr_min_db']:6.2f} dB over {len(values)} test label maps",
                  flush=True)
    return rows


def format_speed(row: dict) -> str:
    return (f"{row['config']:18s} {row['path']:14s} {row['seconds']:7.3f} s  yardstick "
            f"{row['yardstick_gflops']:6.1f} GFLOP/s  x yardstick {row['x_yardstick']:6.1f}  "
            f"{row['speedup_vs_official']:4.2f}x the official fp32  PSNR vs fp32 "
            f"{row['psnr_vs_fp32_db']} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=["pix2pixhd_global", "spade"],
                        help="configurations (default: both)")
    parser.add_argument("--iters", type=int, default=5, help="timed runs per path")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    parser.add_argument("--quality", action="append", default=[], metavar="RUN=DATA",
                        help="a trained run and its dataset folder (pix2pixHD layout)")
    parser.add_argument("--calibration-count", type=int, default=16)
    parser.add_argument("--skip-speed", action="store_true", help="quality only")
    parser.add_argument("--json", help="write every row to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for item in args.quality:
        run, _, data = item.partition("=")
        rows += quality(run, data, args.calibration_count)
    if not args.skip_speed:
        for name in args.only or ["pix2pixhd_global", "spade"]:
            rows += speed(name, args.iters)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
