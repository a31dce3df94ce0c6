"""The public Python API: load a run directory and generate."""

from __future__ import annotations

from pathlib import Path

import torch

from condsynth import checkpoint
from condsynth.methods.base import Method
from condsynth.registry import build_method
from condsynth.runtime import precision_dtype, resolve_device


def load(run_dir: str | Path, device: str = "auto", ema: bool = True,
         precision: str = "fp32", channels_last: bool = False) -> Method:
    """Load a run directory's method, ready to ``generate`` (eval mode, on ``device``).

    With ``ema`` and a ``generator_ema.safetensors`` in the run, the averaged weights are used.
    Networks that inference does not need (the discriminator) are loaded when present.
    ``precision="bf16"`` (CPU or GPU) or ``"fp16"`` (GPU) runs ``generate`` under autocast and
    ``channels_last`` stores the weights in that memory format: the fast path (``condsynth
    bench --run RUN --precision bf16 --channels-last`` measures its speed and its PSNR against
    fp32 for this run).

    A ``.onnx`` file written by ``condsynth export`` loads as :class:`condsynth.export.OnnxMethod`:
    the same ``generate``, run by ONNX Runtime on the CPU.
    """
    from condsynth.config import PRECISIONS
    from condsynth.errors import ConfigError

    if str(run_dir).endswith(".onnx"):       # an exported model, served by ONNX Runtime
        from condsynth.export import load_onnx

        return load_onnx(run_dir, device, precision, channels_last)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    method = checkpoint.read_run(run_dir, lambda view: _read_method(view, Path(run_dir), ema))
    dev = resolve_device(device)
    if precision == "fp16" and dev.type != "cuda":
        raise ConfigError("fp16 inference needs CUDA; use precision bf16 on the CPU")
    method.inference_precision = precision
    method.to(dev)
    if channels_last:
        method.to(memory_format=torch.channels_last)
    if precision != "fp32":
        method.cast_inference_weights(precision_dtype(precision))
    return method.eval()


def _read_method(view: Path, run_dir: Path, ema: bool) -> Method:
    """Build and fill a run's method from ``view`` (see :func:`checkpoint.read_run`)."""
    method = build_method(checkpoint.config_in(view, run_dir))
    present = tuple(name for name in method.network_names
                    if name in method.inference_networks or checkpoint.has_network(view, name))
    checkpoint.load_method(view, method, present)
    if ema and checkpoint.has_network(view, "generator_ema"):
        checkpoint.load_network(view, "generator_ema", method.networks()["generator"])
    return method
