"""The public Python API: load a run directory and generate."""

from __future__ import annotations

from pathlib import Path

import torch

from condsynth import checkpoint
from condsynth.methods.base import Method
from condsynth.registry import build_method


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    from condsynth.errors import CondsynthError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CondsynthError("--device cuda was asked for but PyTorch sees no CUDA device. "
                             "Fix: use --device cpu (or auto), or install a CUDA build of torch.")
    return torch.device(device)


def load(run_dir: str | Path, device: str = "auto", ema: bool = True,
         precision: str = "fp32", channels_last: bool = False) -> Method:
    """Load a run directory's method, ready to ``generate`` (eval mode, on ``device``).

    With ``ema`` and a ``generator_ema.safetensors`` in the run, the averaged weights are used.
    Networks that inference does not need (the discriminator) are loaded when present.
    ``precision="bf16"`` (CPU or GPU) or ``"fp16"`` (GPU) runs ``generate`` under autocast and
    ``channels_last`` stores the weights in that memory format: the fast path (``condsynth
    bench --run RUN --precision bf16 --channels-last`` measures its speed and its PSNR against
    fp32 for this run).
    """
    from condsynth.config import PRECISIONS
    from condsynth.errors import ConfigError

    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    config = checkpoint.read_config(run_dir)
    method = build_method(config)
    for name in method.network_names:
        if name in method.inference_networks or checkpoint.has_network(run_dir, name):
            checkpoint.load_network(run_dir, name, method.networks()[name])
    if ema and checkpoint.has_network(run_dir, "generator_ema"):
        checkpoint.load_network(run_dir, "generator_ema", method.networks()["generator"])
    method.load_extras(Path(run_dir))
    dev = resolve_device(device)
    if precision == "fp16" and dev.type != "cuda":
        raise ConfigError("fp16 inference needs CUDA; use precision bf16 on the CPU")
    method.inference_precision = precision
    method.to(dev)
    if channels_last:
        method.to(memory_format=torch.channels_last)
    if precision != "fp32":
        from condsynth.train import precision_dtype

        method.cast_inference_weights(precision_dtype(precision))
    return method.eval()
