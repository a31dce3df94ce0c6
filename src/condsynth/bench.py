"""``condsynth bench``: training-iteration and inference speed, memory, parameters and FLOPs,
with a matrix-multiply yardstick measured in the same run.

Shared machines drift in speed by 2x within an hour, so absolute seconds mean little: compare
``time x yardstick`` (work in "GEMM-GFLOP equivalents") between runs and implementations.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from condsynth.conditions import condition_of
from condsynth.config import Config, apply_overrides
from condsynth.errors import ConfigError
from condsynth.methods.base import Method, OptimizerSpec
from condsynth.registry import build_method, default_config, parse_config
from condsynth.runtime import autocast, precision_dtype, resolve_device
from condsynth.train import make_optimizers, resolve_optimizers, train_step

BENCH_CLASSES = 35   # Cityscapes' label count, as the reference figures use


def yardstick_gflops(size: int = 2048, reps: int = 30, warmup: int = 3) -> float:
    """Median GFLOP/s of a ``size``^3 fp32 matrix multiply on this machine, now."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = []
    for i in range(warmup + reps):
        start = time.perf_counter()
        a @ b
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times) / 1e9


class PeakMemory:
    """Peak resident memory of a phase: Linux's VmHWM, reset through /proc/self/clear_refs
    (on CUDA: the allocator's peak)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_config(method: str, config: str | None, overrides: list[str]) -> Config:
    if config:
        from condsynth.presets import load_preset_raw

        raw = load_preset_raw(config)
        raw["method"] = raw.get("method", method)
    else:
        raw = default_config(method).to_dict()
        if raw["condition"]["kind"] == "label_map":   # pix2pixHD's bench: 35 labels + edges
            raw["condition"]["num_classes"] = BENCH_CLASSES
            raw["condition"]["use_instance"] = True
    cfg = parse_config(apply_overrides(raw, list(overrides)), where="bench config")
    if cfg.condition.num_classes is None and cfg.condition.kind in ("label_map", "class"):
        cfg.condition.num_classes = BENCH_CLASSES
    return cfg


def random_batch(config: Config, batch: int, height: int, width: int,
                 device: torch.device) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    spec = config.condition
    out: dict[str, Any] = {"image": torch.rand(batch, config.data.channels, height, width,
                                               generator=g) * 2 - 1}
    if spec.kind == "image":
        out["source"] = torch.rand(batch, spec.image_channels, height, width,
                                   generator=g) * 2 - 1
    elif spec.kind == "class":
        out["class"] = torch.randint(0, spec.num_classes, (batch,), generator=g)
    elif spec.kind == "vector":
        out["attributes"] = torch.randint(0, 2, (batch, len(spec.attributes)),
                                          generator=g).float() * 2 - 1
    elif spec.kind == "label_map":
        # Blocky maps (16x16 cells) so instance edges and classes look like real layouts.
        cells = torch.randint(0, config.condition.num_classes,
                              (batch, math.ceil(height / 16), math.ceil(width / 16)), generator=g)
        label = cells.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, :height, :width]
        out["label"] = label
        out["instance"] = label.clone()
    return {k: v.to(device) for k, v in out.items()}


def median_seconds(fn: Any, iters: int, warmup: int, device: torch.device) -> float:
    times = []
    for i in range(warmup + iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def calibrate_batch_norm(model: Method, run: Any, passes: int = 4) -> int:
    """Give freshly built batch-norm layers real running statistics before timing inference.

    A new layer's running mean/var are 0/1; in eval mode those pass activations through
    un-normalized, so they grow layer by layer and a bf16 comparison measures that blow-up, not
    the rounding a trained model sees. ``passes`` train-mode forwards (no gradients) on the bench
    batch set cumulative statistics, as training would. Returns how many layers were calibrated.
    """
    layers = [m for net in model.networks().values() for m in net.modules()
              if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
              and int(m.num_batches_tracked) == 0]
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None                      # cumulative average over the passes
    model.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for i in range(passes):
            torch.manual_seed(i)
            run()
    for m, momentum in zip(layers, momenta, strict=True):
        m.momentum = momentum
    model.eval()
    return len(layers)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [-1, 1] (peak-to-peak 2)."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def snr(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Signal-to-noise ratio in dB: the reference's variance over the error's mean square.
    Unlike PSNR it does not flatter a freshly initialised network whose outputs are near 0."""
    err = float(((output.float() - reference.float()) ** 2).mean())
    signal = float(reference.float().var())
    return math.inf if err == 0 else 10 * math.log10(max(signal, 1e-30) / err)


def run_bench(method: str = "pix2pix", size: str = "256x256", batch: int = 1,
              precision: str = "fp32", channels_last: bool = False, compile: bool = False,
              config: str | None = None, overrides: list[str] = (), device: str | None = None,
              train_iters: int = 7, infer_iters: int = 10, skip_train: bool = False,
              threads: int | None = None, run: str | Path | None = None) -> dict:
    """Measure one method at one size; returns the report dict (see ``format_report``).

    ``run`` benches a trained run directory (its config and weights) instead of a freshly
    initialised ``method``: the fast path's PSNR then describes the outputs users get.

    ``threads`` sets torch's intra-op threads for the yardstick and the runs alike (on a busy
    machine one thread avoids waiting for a second, occupied core at every operation).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {size!r} is not HxW (for example 256x512)") from None
    dev = resolve_device(device or "auto")
    torch.manual_seed(0)
    if run is not None:
        if config or overrides:
            raise ConfigError("bench --run uses the run's own config: drop --config/overrides")
        from condsynth.api import load
        from condsynth.checkpoint import read_config

        cfg = read_config(run)
        model: Method = load(run, device="cpu", ema=True)
    else:
        # The networks are built for the size benched (a method may fix its size, as DCGAN).
        size_settings = [f"data.crop_size={width}", f"data.load_size={width}",
                         f"data.aspect_ratio={width / height}"]
        cfg = bench_config(method, config, size_settings + list(overrides))
        model = build_method(cfg)
    cfg.train.precision = precision
    specs = resolve_optimizers(cfg, model)
    model.to(dev)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    batch_data = random_batch(cfg, batch, height, width, dev)
    params = {name: sum(p.numel() for p in net.parameters())
              for name, net in model.networks().items()}

    report: dict[str, Any] = {
        "method": cfg.method, "size": [height, width], "batch": batch, "precision": precision,
        "channels_last": channels_last, "compile": compile, "device": str(dev),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "params": params,
        "weights": str(run) if run is not None else "random init"}
    # The yardstick brackets each timed phase (before and after; a phase's figure uses the mean
    # of its two), so a drift of the machine's speed during the run shows up in both.
    yardsticks = [yardstick_gflops()]
    memory = PeakMemory(dev)

    # ---- inference
    label = condition_of(batch_data, cfg.condition)
    generate = model.generate
    report["batch_norm_calibrated"] = calibrate_batch_norm(
        model, lambda: model.forward_generator(batch_data))
    model.eval()
    if compile:
        for name in model.inference_networks:
            setattr(model, name, torch.compile(model.networks()[name]))
    with torch.random.fork_rng(devices=[]):
        reference = None
        if precision != "fp32":
            torch.manual_seed(0)
            reference = generate(label, batch_size=batch, instance=batch_data.get("instance"))

        def infer() -> torch.Tensor:
            torch.manual_seed(0)
            with autocast(dev, precision):
                return generate(label, batch_size=batch,
                                instance=batch_data.get("instance"))

        fp32_state = None
        if precision != "fp32":     # as condsynth.load(..., precision=...) serves it
            fp32_state = {name: copy.deepcopy(model.networks()[name].state_dict())
                          for name in model.inference_networks}
            model.cast_inference_weights(precision_dtype(precision))
        memory.reset()
        report["infer_s"] = median_seconds(infer, infer_iters, 2, dev)
        report["peak_infer_mb"] = round(memory.peak_mb(), 1)
        output = infer()
        if reference is not None:
            report["psnr_vs_fp32_db"] = round(psnr(output, reference), 2)
            report["snr_vs_fp32_db"] = round(snr(output, reference), 2)
        flops = FlopCounterMode(display=False)
        with flops:
            infer()
        report["gflops"] = round(flops.get_total_flops() / 1e9, 2)
        if fp32_state is not None:  # training starts from the float32 weights
            for name, state in fp32_state.items():
                net = model.networks()[name].to(torch.float32)
                net.load_state_dict(state)
                net.to(memory_format=memory_format)
    yardsticks.append(yardstick_gflops())
    report["yardstick_gflops"] = round(statistics.mean(yardsticks[-2:]), 1)
    report["infer_images_per_s"] = round(batch / report["infer_s"], 3)
    report["infer_achieved_gflops_per_s"] = round(report["gflops"] / report["infer_s"], 1)

    # ---- training iteration
    if not skip_train:
        with tempfile.TemporaryDirectory() as tmp:
            train_iteration = make_train_iteration(model, cfg, batch_data, dev, Path(tmp),
                                                   compile, specs)
            memory.reset()
            report["train_iter_s"] = median_seconds(train_iteration, train_iters, 2, dev)
            report["peak_train_mb"] = round(memory.peak_mb(), 1)
        yardsticks.append(yardstick_gflops())
        report["yardstick_train_gflops"] = round(statistics.mean(yardsticks[-2:]), 1)
        report["train_images_per_s"] = round(batch / report["train_iter_s"], 3)
    report["peak_rss_mb"] = max(report.get("peak_train_mb", 0.0), report["peak_infer_mb"])
    report["yardstick_runs_gflops"] = [round(y, 1) for y in yardsticks]
    for key, yardstick in (("infer_s", "yardstick_gflops"),
                           ("train_iter_s", "yardstick_train_gflops")):
        if key in report:
            report[f"{key}_x_yardstick"] = round(report[key] * report[yardstick], 1)
            report[key] = round(report[key], 4)
    return report


def make_train_iteration(model: Method, cfg: Config, batch: dict[str, Any],
                         dev: torch.device, tmp: Path, compile: bool,
                         specs: dict[str, OptimizerSpec] | None = None) -> Any:
    """One full iteration as ``train.py`` runs it (:func:`condsynth.train.train_step`: every
    phase, with its optimizer step). Perceptual losses use VGG19 (Auto-painter's VGG16) with
    random weights (nothing is downloaded)."""
    vgg_path = tmp / "vgg-random.pth"
    if hasattr(cfg.model, "vgg_weights"):
        from condsynth.losses import vgg16_feature_layers, vgg19_feature_layers

        trunk = vgg16_feature_layers() if cfg.method == "autopainter" else vgg19_feature_layers()
        torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, vgg_path)
        cfg.model.vgg_weights = str(vgg_path)
    model.train()
    if compile:
        for name in model.network_names:
            setattr(model, name, torch.compile(model.networks()[name]))
    optimizers = make_optimizers(model, specs or resolve_optimizers(cfg, model), dev)
    precision = cfg.train.precision
    step = [0]

    def iteration() -> None:
        train_step(model, batch, optimizers, step[0], precision, dev)
        step[0] += 1

    return iteration


def format_report(report: dict[str, Any]) -> str:
    params = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in report["params"].items())
    lines = [
        f"condsynth bench: {report['method']} {report['size'][0]}x{report['size'][1]} "
        f"batch {report['batch']} {report['precision']}"
        + (" channels_last" if report["channels_last"] else "")
        + (" compiled" if report["compile"] else "") + f" on {report['device']} "
        f"({report['threads']} threads, torch {report['torch']})",
        f"  yardstick (2048^3 fp32 matmul): {report['yardstick_gflops']} GFLOP/s around "
        "inference" + (f", {report['yardstick_train_gflops']} around training"
                       if "yardstick_train_gflops" in report else "")
        + f" (measured {', '.join(map(str, report['yardstick_runs_gflops']))})",
        f"  parameters: {params}",
        f"  generator forward: {report['gflops']} GFLOP",
        f"  inference: {report['infer_s']:.4f} s/iter, {report['infer_images_per_s']} images/s, "
        f"{report['infer_achieved_gflops_per_s']} GFLOP/s achieved, "
        f"x yardstick {report['infer_s_x_yardstick']}, peak {report['peak_infer_mb']} MiB",
    ]
    if "psnr_vs_fp32_db" in report:
        lines.append(f"  output vs fp32: {report['psnr_vs_fp32_db']} dB PSNR, "
                     f"{report['snr_vs_fp32_db']} dB SNR ({report['weights']})")
    if "train_iter_s" in report:
        lines.append(
            f"  training: {report['train_iter_s']:.4f} s/iter, {report['train_images_per_s']} "
            f"images/s, x yardstick {report['train_iter_s_x_yardstick']}, "
            f"peak {report['peak_train_mb']} MiB")
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(run_bench(), indent=2))
