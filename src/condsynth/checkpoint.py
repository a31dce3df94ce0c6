"""Run directories: ``config.yaml``, ``<network>.safetensors``, ``train_state.pt``.

A checkpoint is several files that must change together. They are written into ``.staging/``
first; a ``COMPLETE`` marker written last makes the set valid; only then are the files moved
into place. A kill before the marker leaves the previous checkpoint untouched (the staging
folder is discarded); a kill after it is rolled forward by :func:`recover`, which every reader
calls. Either way the run directory holds one consistent, loadable checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

if TYPE_CHECKING:
    from condsynth.methods.base import Method

from condsynth.config import FORMAT_VERSION, Config, config_yaml
from condsynth.errors import CheckpointError
from condsynth.registry import load_config

STAGING = ".staging"
COMPLETE = "COMPLETE"
TRAIN_STATE = "train_state.pt"
CONFIG = "config.yaml"
METHOD_STATE = "method_state.safetensors"


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def tensors_bytes(tensors: dict[str, torch.Tensor], step: int) -> bytes:
    """Tensors as safetensors bytes, with the step and format in the metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return save_safetensors_bytes(tensors, metadata={"format_version": str(FORMAT_VERSION),
                                                     "step": str(step)})


def state_dict_bytes(module: nn.Module, step: int) -> bytes:
    """A module's tensors as safetensors bytes, with the step and format in the metadata."""
    return tensors_bytes(module.state_dict(), step)


def write_checkpoint(run_dir: str | Path, config: Config, networks: dict[str, nn.Module],
                     step: int, train_state: dict[str, Any] | None = None,
                     extra_files: dict[str, bytes] | None = None,
                     method_state: dict[str, torch.Tensor] | None = None) -> None:
    """Write a consistent checkpoint into ``run_dir`` (see the module docstring); a method's
    own state tensors (:meth:`Method.method_state`) go to ``method_state.safetensors``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = run_dir / STAGING
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    files: dict[str, bytes] = {CONFIG: config_yaml(config).encode()}
    for name, module in networks.items():
        files[f"{name}.safetensors"] = state_dict_bytes(module, step)
    if method_state:
        files[METHOD_STATE] = tensors_bytes(method_state, step)
    if train_state is not None:
        buffer = io.BytesIO()
        torch.save(train_state, buffer)
        files[TRAIN_STATE] = buffer.getvalue()
    files.update(extra_files or {})
    for name, data in files.items():
        _fsync_write(staging / name, data)
    _fsync_write(staging / COMPLETE, json.dumps({"step": step, "files": sorted(files)}).encode())
    _commit(run_dir)


def _commit(run_dir: Path) -> None:
    staging = run_dir / STAGING
    manifest = json.loads((staging / COMPLETE).read_text())
    for name in manifest["files"]:
        src = staging / name
        if src.exists():                      # already moved by an interrupted commit
            os.replace(src, run_dir / name)
    shutil.rmtree(staging)


def recover(run_dir: str | Path) -> None:
    """Finish or discard a checkpoint write that a crash interrupted."""
    staging = Path(run_dir) / STAGING
    if not staging.exists():
        return
    if (staging / COMPLETE).exists():
        _commit(Path(run_dir))
    else:
        shutil.rmtree(staging, ignore_errors=True)


def read_config(run_dir: str | Path) -> Config:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    recover(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"{run_dir} is not a condsynth run directory: {CONFIG} is missing. "
                              "Fix: point at a folder written by `condsynth train` or "
                              "`condsynth import`.")
    return load_config(run_dir / CONFIG)


def load_network(run_dir: str | Path, name: str, module: nn.Module) -> int:
    """Load ``<name>.safetensors`` into ``module`` (strict); returns the stored step."""
    path = Path(run_dir) / f"{name}.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run directory holds no trained {name}.")
    try:
        tensors = load_file(path)
        with open(path, "rb") as f:   # the metadata lives in the JSON header
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}).") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit the network described by config.yaml: "
                              f"{str(err).splitlines()[0]}") from None
    return int(header.get("__metadata__", {}).get("step", 0))


def load_method(run_dir: str | Path, method: Method, networks: tuple[str, ...] | None = None,
                ) -> None:
    """Load a run's networks (``networks``, or all; a missing one is an error), its extra files
    and its method state into ``method``."""
    run_dir = Path(run_dir)
    for name, module in method.networks().items():
        if networks is None or name in networks:
            load_network(run_dir, name, module)
    method.load_extras(run_dir)
    path = run_dir / METHOD_STATE
    if path.is_file():
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path} is not a readable safetensors file ({err}).") from None
        method.load_method_state(tensors)


def has_network(run_dir: str | Path, name: str) -> bool:
    return (Path(run_dir) / f"{name}.safetensors").is_file()


def read_train_state(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / TRAIN_STATE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: this run cannot be resumed (it holds no "
                              "optimizer state). Start a new run, or train from its weights.")
    return torch.load(path, map_location="cpu", weights_only=True)
