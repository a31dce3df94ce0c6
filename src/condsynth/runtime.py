"""Device and precision, for training and inference alike: ``resolve_device``, the reduced
dtype of a mixed precision, and the autocast context it runs in."""

from __future__ import annotations

import contextlib

import torch

from condsynth.errors import CondsynthError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CondsynthError("--device cuda was asked for but PyTorch sees no CUDA device. "
                             "Fix: use --device cpu (or auto), or install a CUDA build of torch.")
    return torch.device(device)


def precision_dtype(precision: str) -> torch.dtype:
    """The reduced dtype of a mixed precision: ``bf16`` or ``fp16``."""
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for ``precision`` (``fp32``: a no-op); fp16 needs CUDA."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = precision_dtype(precision)
    if device.type == "cpu" and dtype == torch.float16:
        raise CondsynthError("fp16 mixed precision needs CUDA; use --precision bf16 on the CPU")
    return torch.autocast(device.type, dtype=dtype)
